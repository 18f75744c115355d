import json
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from pisearch.report.dashboard import search_front

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["quickstart.ipynb", "pareto_analysis.ipynb"]


def execute(name: str) -> str:
    """Run a notebook top to bottom in a fresh kernel (cwd: notebooks/); returns all its text outputs."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") + out.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_are_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")


def test_notebooks_run_on_a_tiny_study(tmp_path, monkeypatch):
    run = tmp_path / "run"
    # the kernel's torch threads as conftest sets them here (2 threads on a busy 2-core box: 10× slower)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("PISEARCH_TEST_THREADS", "1"))
    settings = {"DATASET": "synthetic", "TRIALS": "5", "EPOCHS": "1", "TRAIN_SUBSET": "64", "RULE_BUDGETS": "3000",
                "RUN": str(run), "BUDGET": "6000"}
    for key, value in settings.items():
        monkeypatch.setenv(f"PISEARCH_NB_{key}", value)
    quick = execute("quickstart.ipynb")
    trials = pd.read_csv(run / "trials.csv")
    assert len(trials) == 5 and (trials["source"] == "rule").sum() == 1
    assert "5 trials" in quick and (run / "dashboard.html").is_file()

    analysis = execute("pareto_analysis.ipynb")
    front = search_front(trials)
    within = front[front["relus"] <= 6000]
    pick = int(within.loc[within["accuracy"].idxmax(), "number"])
    assert f"pisearch export {run} --trial {pick} -o {run}/exports/trial{pick}" in analysis
    export = run / "exports" / f"trial{pick}"
    assert {"arch.json", "model.safetensors", "model.onnx", "MODEL_CARD.md"} <= {p.name for p in export.iterdir()}
    assert json.loads((export / "metrics.json").read_text())["weights"] == "kept weights of the trial"
    assert "search_hypervolume" in analysis
