import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState, create_trial

from pisearch import __version__
from pisearch.cli import main
from pisearch.errors import UserError
from pisearch.report.compare import hypervolume_vs_rule
from pisearch.report.dashboard import hypervolume_history, search_front
from pisearch.study import load_study_config, run_study
from pisearch.study.dashboard_data import load_dashboard_data, write_dashboard

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SMALL_SHOT = ARTIFACTS / "dashboard-small.png"  # committed as docs/img/dashboard.png (docs/architecture.md)
FAIL_REASON = "diverged: loss nan at epoch 1 (test)"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real tiny study: 2 rule points, 6 searched trials (2 of them infeasible), plus one failed trial."""
    base = tmp_path_factory.mktemp("dash")
    (base / "study.yaml").write_text(yaml.safe_dump({
        "name": "dash", "space": str(ROOT / "search_spaces" / "tiny.yaml"),
        "dataset": {"name": "synthetic", "resolution": 16},
        "fidelity": {"epochs": 1, "batch_size": 32, "train_subset": 96, "threads": 1},
        "n_trials": 8, "sampler": {"name": "random"}, "seed": 0, "budget": {"min_relus": 500},
        "baselines": {"deepreshape": {"budgets": [3000, 6000]}}, "compare": {"seeds": 2},
    }))
    config, space = load_study_config(base / "study.yaml")
    result = run_study(config, space, out_dir=base / "run", progress=False)
    result.study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"source": "search", "reason": FAIL_REASON}))
    return base / "run"


def brute_front_numbers(trials: pd.DataFrame) -> set[int]:
    """Searched, feasible, complete trials not dominated in (accuracy ↑, ReLUs ↓); one row per spec (its last)."""
    ok = trials[(trials["state"] == "COMPLETE") & (trials["source"] == "search") & trials["accuracy"].notna()
                & (trials["feasible"] == True)].drop_duplicates("spec", keep="last")  # noqa: E712
    v = ok[["accuracy", "relus"]].to_numpy(float) * [-1, 1]
    keep = [not any((w <= u).all() and (w < u).any() for w in v) for u in v]
    return set(ok[keep]["number"])


def frame(rows):
    return pd.DataFrame(rows, columns=["number", "state", "source", "spec", "level", "accuracy", "relus"])


def test_search_front_takes_each_candidate_at_its_highest_level():
    trials = frame([
        (0, "COMPLETE", "search", "a", 0, 0.50, 100), (1, "COMPLETE", "search", "b", 0, 0.60, 100),
        (2, "COMPLETE", "search", "c", 0, 0.40, 50), (3, "COMPLETE", "rule", "d", 0, 0.90, 10),
        (4, "FAIL", "search", "e", np.nan, np.nan, 20), (5, "COMPLETE", "search", "a", 1, 0.70, 100),
    ])
    front = search_front(trials)
    assert front["number"].tolist() == [2, 5]  # a at level 1 (0.70) dominates b; the rule point is not searched
    assert front["level"].tolist() == [0, 1]


def test_hypervolume_history_by_hand():
    trials = frame([
        (0, "COMPLETE", "rule", "r", 0, 0.6, 10), (1, "COMPLETE", "search", "a", 0, 0.5, 100),
        (2, "COMPLETE", "search", "b", 0, 0.4, 1000), (3, "COMPLETE", "search", "c", 0, 0.8, 1000),
    ])
    history, summary = hypervolume_history(trials)
    # reference: accuracy 0, log10(10 × 1000) = 4; a covers 0.5 × (4 − 2); c adds (0.8 − 0.5) × (4 − 3)
    assert history["number"].tolist() == [1, 2, 3]
    assert history["hypervolume"].tolist() == pytest.approx([1.0, 1.0, 1.3])
    assert summary["search_hypervolume"] == pytest.approx(history["hypervolume"].iloc[-1])


def test_dashboard_of_a_run(run_dir):
    path = write_dashboard(run_dir)
    assert path == run_dir / "dashboard.html"
    page = path.read_text()
    trials = pd.read_csv(run_dir / "trials.csv")
    expected = brute_front_numbers(trials)
    assert re.search(r'data-pareto-points="(\d+)"', page).group(1) == str(len(expected))
    for n in expected:
        assert f"pisearch export {run_dir} --trial {n} -o {run_dir}/exports/trial{n}" in page
    assert FAIL_REASON in page and "not trained" in page  # the failed and the infeasible trials are listed
    assert "9: 8 complete, 1 fail, 0 pruned" in page
    made_by = f"{__version__} drew this page; the study was created by {__version__}; trials run by {__version__} ("
    assert made_by in page
    assert "Plotly.newPlot" in page and not re.search(r"<script[^>]+src=", page)  # plotly.js inlined
    assert page.count('id="compare-table"') == 1 and "deepreshape@6000" in page


def test_hypervolume_of_a_run_matches_compare(run_dir):
    trials = load_dashboard_data(run_dir).trials
    history, _ = hypervolume_history(trials)
    assert (np.diff(history["hypervolume"]) >= 0).all()
    assert history["hypervolume"].iloc[-1] == pytest.approx(hypervolume_vs_rule(trials)["search_hypervolume"])


def test_promoted_level_replaces_level_zero_measurement(run_dir, tmp_path):
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    storage = f"sqlite:///{run / 'study.db'}"
    trials = load_dashboard_data(run).trials
    front = set(search_front(trials)["number"])
    ok = trials[(trials["source"] == "search") & trials["accuracy"].notna() & ~trials["number"].isin(front)]
    row = ok.iloc[0]  # a searched trial off the level-0 front, re-measured at level 1 with a better accuracy
    level1 = optuna.create_study(study_name="dash@L1", storage=storage, directions=["maximize", "minimize"])
    attrs = {k: row[k] for k in ("source", "spec", "summary", "feasible")} | {"parent": int(row["number"])}
    level1.add_trial(create_trial(
        state=TrialState.COMPLETE, values=[0.99, float(row["relus"])], params={"parent": int(row["number"])},
        distributions={"parent": optuna.distributions.IntDistribution(0, 10**6)},
        user_attrs=attrs | {"accuracy": 0.99, "relus": int(row["relus"]), "level": 1}))
    data = load_dashboard_data(run)  # the level study is not a second study to choose from
    new_front = search_front(data.trials).set_index("number")
    assert new_front.loc[row["number"], "level"] == 1 and new_front.loc[row["number"], "accuracy"] == 0.99
    assert data.facts["trials"].startswith("9: ") and "level 1: 1 trials" in data.facts["fidelity levels measured"]


def test_dashboard_with_no_complete_trial(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="empty", storage=storage, directions=["maximize", "minimize"])
    for reason in ("out of memory (test)", FAIL_REASON):
        study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"source": "search", "reason": reason}))
    page = write_dashboard(storage, out=tmp_path / "d.html").read_text()
    assert "No complete trials with a measured accuracy yet (2 trials: 2 fail)" in page
    assert "out of memory (test)" in page and FAIL_REASON in page
    assert "Plotly.newPlot" not in page and "holds no pisearch configuration" in page


def test_source_errors(tmp_path):
    with pytest.raises(UserError, match="no such run folder"):
        load_dashboard_data(tmp_path / "nope")
    with pytest.raises(UserError, match="no study.db"):
        load_dashboard_data(tmp_path)
    (tmp_path / "junk.db").write_text("not a database")
    with pytest.raises(UserError, match="cannot (read|open)"):
        load_dashboard_data(tmp_path / "junk.db")
    storage = f"sqlite:///{tmp_path / 'two.db'}"
    for name in ("a", "b"):
        optuna.create_study(study_name=name, storage=storage)
    with pytest.raises(UserError, match=r"holds 2 studies \(a, b\); name one with --study"):
        load_dashboard_data(storage)
    with pytest.raises(UserError, match="no study 'c'"):
        load_dashboard_data(storage, study="c")
    data = load_dashboard_data(storage, study="b")
    assert data.facts["study"] == "b" and data.trials.empty
    assert data.export_command.startswith(f"pisearch export {storage} --study b --trial {{trial}}")


def test_journal_file_storage(tmp_path):
    log = tmp_path / "journal.log"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(log)))
    optuna.create_study(study_name="j", storage=storage).add_trial(
        create_trial(state=TrialState.FAIL, user_attrs={"source": "search", "reason": FAIL_REASON}))
    for source in (log, f"journal:///{log}"):
        path = write_dashboard(source)
        assert path == tmp_path / "dashboard.html" and FAIL_REASON in path.read_text()


def cli(monkeypatch, *args) -> int:
    monkeypatch.setattr(sys, "argv", ["pisearch", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code


def test_cli_serve_starts_optuna_dashboard(run_dir, tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "optuna-dashboard"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "args.txt"}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    out = tmp_path / "x" / "dash.html"
    assert cli(monkeypatch, "dashboard", str(run_dir), "-o", str(out), "--serve", "--port", "8123") == 0
    assert out.is_file()
    args = (tmp_path / "args.txt").read_text().split()
    assert args == [f"sqlite:///{run_dir}/study.db", "--host", "127.0.0.1", "--port", "8123"]
    assert "http://127.0.0.1:8123/" in capsys.readouterr().out


def test_cli_serve_without_optuna_dashboard(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli(monkeypatch, "dashboard", str(run_dir), "-o", str(tmp_path / "d.html"), "--serve") == 2
    assert "pip install optuna-dashboard" in capsys.readouterr().err
    assert (tmp_path / "d.html").is_file()  # the HTML dashboard is written anyway


# --- headless Chromium ----------------------------------------------------------------------------------------------

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (CI installs Debian's chromium)")


def render(page: Path, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """The DOM after scripts ran and every console message (Chromium logs them all as INFO:CONSOLE)."""
    args = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--enable-logging=stderr",
            "--v=0", "--window-size=1400,3400", "--dump-dom", page.resolve().as_uri()]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        args.insert(-2, f"--screenshot={screenshot}")
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def small_copy(shot: Path, out: Path, height: int = 1020, width: int = 900) -> Path:
    """The top of a screenshot (the study facts and the accuracy-vs-ReLU plot), ``width`` pixels wide in a 128-colour
    palette: small enough to commit."""
    from PIL import Image

    with Image.open(shot) as image:
        top = image.convert("RGB").crop((0, 0, image.width, min(height, image.height)))
    top = top.resize((width, round(top.height * width / top.width)), Image.Resampling.LANCZOS)
    top.quantize(colors=128, method=Image.Quantize.FASTOCTREE).save(out, optimize=True)  # keeps the plot's colours
    return out


def rendered_points(dom: str, plot_id: str) -> dict[str, int]:
    """Legend name → number of rendered markers of each scatter trace of plotly div ``plot_id``."""
    start = dom.index(">", dom.index(f'id="{plot_id}"'))
    div = dom[start:dom.find('class="plotly-graph-div', start)]  # up to the next plot
    names = re.findall(r'class="legendtext"[^>]*data-unformatted="([^"]*)"', div)
    traces = div.split('<g class="trace scatter')[1:]
    counts = [t.count('<path class="point') for t in traces]
    assert len(names) == len(counts), (names, counts)
    return dict(zip(names, counts))


@needs_chromium
def test_console_check_catches_errors(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('boom'); undefinedFunction();</script></body></html>")
    _, console = render(page)
    assert len(console) == 2 and "boom" in console[0] and "undefinedFunction" in console[1]


@needs_chromium
def test_dashboard_renders_in_chromium(run_dir, tmp_path):
    page = write_dashboard(run_dir, out=tmp_path / "dashboard.html")
    shot = ARTIFACTS / "dashboard.png"
    dom, console = render(page, shot)
    assert console == []
    expected = len(brute_front_numbers(pd.read_csv(run_dir / "trials.csv")))
    points = rendered_points(dom, "pareto-plot")
    assert points[f"Pareto front (search, {expected})"] == expected
    assert points["rule (2)"] == 2
    trials = pd.read_csv(run_dir / "trials.csv")
    searched = trials[(trials["source"] == "search") & trials["accuracy"].notna()]["spec"].nunique()
    assert points[f"search ({searched})"] == searched
    assert len(re.findall(r"<tr>", dom.split('id="pareto-table"')[1].split("</table>")[0])) == expected + 1
    assert shot.stat().st_size > 50_000
    assert 10_000 < small_copy(shot, SMALL_SHOT).stat().st_size < 150_000
