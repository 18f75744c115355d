"""README.md and docs/: the generated parts match the code, every link and anchor resolves, every key and column is
documented, and the README stays a five-minute read."""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

import pisearch
from pisearch.cli import main
from pisearch.report.linearized import LINEARIZED_COLUMNS
from pisearch.space import SpaceConfig
from pisearch.study import StudyConfig, load_study_config, run_study
from pisearch.study.config import FidelityCheckConfig, LinearizeStage, RuleBaseline
from pisearch.study.store import COLUMNS

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")  # a script
generate = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(generate)

README_LINES = 150


def test_generated_parts_are_current():
    stale = generate.stale()
    assert not stale, f"generated docs out of date: {', '.join(stale)}; run {generate.COMMAND}"


def test_every_link_and_anchor_resolves():
    assert generate.broken_links(generate.pages()) == []


def test_the_link_checker_finds_planted_broken_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## `pisearch run` options\n\ntext\n")
    (tmp_path / "README.md").write_text("\n".join([
        "# Title", "", "## Same", "## Same", "",
        "[ok](docs/page.md) [ok](docs/page.md#pisearch-run-options) [ok](#same-1) [web](https://example.org/x#y)",
        "[missing file](docs/nope.md) [missing anchor](docs/page.md#nope) [missing here](#other)",
        "![missing image](docs/img/none.png) [outside](../elsewhere.md)",
        "`[code](not/a/link.md)`", "```", "[fenced](not/a/link.md)", "```",
    ]))
    broken = generate.broken_links([tmp_path / "README.md", tmp_path / "docs" / "page.md"], tmp_path)
    assert broken == [
        "README.md: docs/nope.md (no such file)",
        "README.md: docs/page.md#nope (no heading with anchor #nope)",
        "README.md: #other (no heading with anchor #other)",
        "README.md: docs/img/none.png (no such file)",
        "README.md: ../elsewhere.md (no such file)",
    ]


@pytest.mark.parametrize("heading, anchor", [
    ("`pisearch run`", "pisearch-run"), ("Search vs DeepReShape's rule, and vs random sampling",
                                         "search-vs-deepreshapes-rule-and-vs-random-sampling"),
    ("What `runs/quickstart/` holds", "what-runsquickstart-holds"), ("Parallel & distributed", "parallel--distributed"),
])
def test_anchors_are_githubs(heading, anchor):
    assert generate.slug(heading) == anchor


def documented_keys(page: str) -> dict[str, str]:
    """``key → default cell`` of the key tables of a docs page (backticks stripped)."""
    rows = [line.split(" | ") for line in page.splitlines() if line.startswith("| `")]
    return {row[0].strip("| `"): row[2].strip("`") for row in rows if len(row) == 4}


def keys(model, prefix=""):
    """Every key of a pydantic model, nested blocks' keys included (walked here, not by the generator)."""
    for name, field in model.model_fields.items():
        yield prefix + name
        nested = generate.model_in(field.annotation)
        if nested is not None:
            yield from keys(nested, f"{prefix}{name}.")


def flat(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        out[prefix + key] = value
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
    return out


def test_every_study_and_space_key_is_documented_with_its_default():
    docs = documented_keys((ROOT / "docs" / "studies.md").read_text())
    # defaults as the models dump them: a minimal file of each kind, and each optional block filled minimally
    defaults = flat(StudyConfig(name="s", space="s.yaml").model_dump(mode="json"))
    defaults |= flat(LinearizeStage(methods=["snl"], budgets=[0.1]).model_dump(mode="json"), "linearize.")
    defaults |= flat(FidelityCheckConfig(level={"epochs": 9}).model_dump(mode="json"), "fidelity_check.")
    defaults |= flat(RuleBaseline().model_dump(mode="json"), "baselines.deepreshape.")
    space = SpaceConfig.model_validate({"resolution": 8, "widths": {"base": 8}, "stages": {"depth": [1]}})
    space_defaults = flat(space.model_dump(mode="json"))
    for model, given in ((StudyConfig, defaults), (SpaceConfig, space_defaults)):
        found = documented_keys((ROOT / "docs" / "studies.md").read_text().split(
            "## Every key of a search-space file")[model is SpaceConfig])
        for key in keys(model):
            assert key in found, f"docs/studies.md does not list {key}"
            if found[key] not in ("required", "the keys below") and key in given:
                assert found[key] == generate.yaml_text(given[key]), key
    assert docs["fidelity.epochs"] == "5" and docs["sampler.name"] == "cost_ehvi" and docs["stem.kind"] == "cifar"


def test_documented_example_space_is_the_shipped_quickstart_space():
    page = (ROOT / "docs" / "studies.md").read_text()
    block = page.split("## A search-space file", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    shipped = yaml.safe_load((ROOT / "search_spaces" / "quickstart.yaml").read_text())
    assert SpaceConfig.model_validate(yaml.safe_load(block)) == SpaceConfig.model_validate(shipped)


def test_readme_is_a_five_minute_read():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_LINES
    assert "pip install torch==2.14.1 torchvision==0.29.1 -e '.[dev]' && pisearch run studies/quickstart.yaml" in readme
    assert "```bash\npython3 -m pytest\n```" in readme  # .ci/run runs these two commands


def test_pisearch_version_names_the_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"pisearch {pisearch.__version__}\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny study with rule points and verdict seeds, so that every report but the optional stages' is written."""
    base = tmp_path_factory.mktemp("docs")
    (base / "study.yaml").write_text(yaml.safe_dump({
        "name": "docs", "space": str(ROOT / "search_spaces" / "tiny.yaml"),
        "dataset": {"name": "synthetic", "resolution": 16},
        "fidelity": {"epochs": 1, "batch_size": 32, "train_subset": 64, "threads": 1}, "keep_weights": True,
        "n_trials": 3, "sampler": {"name": "random"}, "budget": {"min_relus": 500, "max_relus": 9000, "bins": 2},
        "baselines": {"deepreshape": {"budgets": [3000, 6000]}}, "compare": {"seeds": 2},
    }))
    config, space = load_study_config(base / "study.yaml")
    run_study(config, space, out_dir=base / "run", progress=False)
    return base / "run"


def test_every_column_and_key_a_run_writes_is_documented(run_dir):
    page = (ROOT / "docs" / "outputs.md").read_text()
    written = set(COLUMNS) | set(LINEARIZED_COLUMNS) | set(json.loads((run_dir / "hypervolume.json").read_text()))
    for name in ("trials.csv", "pareto.csv", "compare.csv", "verdict_runs.csv"):
        written |= set(pd.read_csv(run_dir / name).columns)
    assert "pisearch_version" in written and "target_bin" in written
    missing = sorted(c for c in written if f"`{c}`" not in page)
    assert not missing, f"docs/outputs.md does not describe {missing}"
    files = {p.name for p in run_dir.iterdir() if not p.name.startswith(".")}
    assert not sorted(f for f in files if f"`{f}" not in page)
