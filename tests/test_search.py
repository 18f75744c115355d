"""A search that really searches (issue 19): every trial the sampler sees carries the space's fixed encoding, so
NSGA-II breeds; seeds from the rule's designs; a compute cap; verdicts re-trained with seeds.

Training is replaced by a deterministic stand-in (accuracy from the network's size and the training seed), so
these tests check the study's machinery in seconds; tests/test_study.py trains for real."""

import html
import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

import pisearch.study.objective as objective_mod
from pisearch.cost import count
from pisearch.errors import UserError
from pisearch.report import dashboard_html
from pisearch.rules import deepreshape_rule
from pisearch.space import SearchSpace
from pisearch.study import load_dashboard_data, load_study_config, run_study
from pisearch.study.runner import make_sampler
from pisearch.study.slots import OVER_BUDGET, redrawn as redrawn_reason
from pisearch.train import TrainResult

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "search_spaces" / "tiny.yaml"
BASE = {"name": "s", "space": str(TINY), "dataset": {"name": "synthetic", "resolution": 16},
        "fidelity": {"epochs": 1, "batch_size": 32, "train_subset": 96, "threads": 1}, "seed": 4, "dashboard": False,
        "compare": {"seeds": 0}}


@pytest.fixture
def trained(monkeypatch):
    """Replace proxy training by a stand-in; returns the (parameter count, seed) of every network trained."""
    calls = []

    def fake(model, train, val, fidelity, device="cpu", progress=None):
        size = sum(p.numel() for p in model.parameters())
        calls.append((size, fidelity.seed))
        accuracy = 0.5 + (size % 389) / 1000 + (fidelity.seed % 7) / 500
        return TrainResult(accuracy=accuracy, accuracy_per_epoch=[accuracy], train_seconds=0.01,
                           images_per_second=1.0)

    monkeypatch.setattr(objective_mod, "train_proxy", fake)
    return calls


def run(tmp_path: Path, **overrides):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**BASE, **overrides}))
    config, space = load_study_config(tmp_path / "s.yaml")
    return run_study(config, space, out_dir=tmp_path / "run", progress=False), config, SearchSpace.load(TINY)


RULE = {"baselines": {"deepreshape": {"budgets": [3000, 6000]}}}


def test_nsga2_crosses_over_every_knob_with_baselines_and_seeds(tmp_path, trained):
    result, config, space = run(tmp_path, n_trials=16, sampler={"name": "nsga2", "population_size": 4},
                                init={"rule": True, "neighbours": 1}, **RULE)
    study = result.study
    knobs = set(space.grid())
    assert all(set(t.params) == knobs for t in study.trials)  # baselines and seeds carry the full encoding
    sampler = make_sampler(config, space)
    assert set(sampler.infer_relative_search_space(study, study.ask())) == knobs
    # the same study under a random sampler with the same seed: NSGA-II's children are not its draws
    random_study = run(tmp_path / "random", n_trials=16, sampler={"name": "random"},
                       init={"rule": True, "neighbours": 1}, **RULE)[0].study
    sampled = [t.params for t in study.trials if t.user_attrs.get("source") == "search"]
    drawn = [t.params for t in random_study.trials if t.user_attrs.get("source") == "search"]
    assert len(sampled) >= 8 and sampled[4:] != drawn[4:]


def test_nsga2_breeds_from_the_seeds(tmp_path, trained):
    """The seeds are generation 0 of NSGA-II and the parents of generation 1: the sampled trials after them are
    their children, not random draws (before, NSGA-II gave enqueued trials no generation, so the seeds were never
    parents and generation 0 was random draws)."""
    result, config, space = run(tmp_path, n_trials=14, sampler={"name": "nsga2", "population_size": 4},
                                init={"rule": True, "neighbours": 1}, **RULE)
    study = result.study
    generation = {t.number: t.system_attrs.get("NSGAIISampler:generation") for t in study.trials}
    seeds = [t.number for t in study.trials if t.user_attrs.get("source") == "seed"]
    searched = [t.number for t in study.trials if t.user_attrs.get("source") == "search"]
    assert len(seeds) == 4 and {generation[n] for n in seeds} == {0}
    assert searched and min(generation[n] for n in searched) >= 1
    parents = make_sampler(config, space).get_parent_population(study, 1)
    assert {t.number for t in parents} == set(seeds)


def test_seeds_are_the_rule_designs_and_their_neighbours(tmp_path, trained):
    result, _, space = run(tmp_path, n_trials=10, sampler={"name": "random"}, init={"rule": True, "neighbours": 2},
                           **RULE)
    trials = result.trials
    seeds = trials[trials["source"] == "seed"]
    rules = trials[trials["source"] == "rule"].set_index("label")
    assert sorted(seeds["label"]) == ["seed deepreshape@3000", "seed deepreshape@3000 ~1", "seed deepreshape@3000 ~2",
                                      "seed deepreshape@6000", "seed deepreshape@6000 ~1", "seed deepreshape@6000 ~2"]
    for budget in (3000, 6000):
        seed = seeds[seeds["label"] == f"seed deepreshape@{budget}"].iloc[0]
        assert seed["spec_hash"] == rules.loc[f"deepreshape@{budget}", "spec_hash"]
        assert seed["reused_from"] == rules.loc[f"deepreshape@{budget}", "number"]  # trained once
        near = seeds[seeds["label"].str.startswith(f"seed deepreshape@{budget} ~")]
        assert not near["spec_hash"].isin(rules["spec_hash"]).any()
    assert len(trained) == len(set(trials["spec_hash"].dropna()))  # every distinct design trained once
    again = run(tmp_path, n_trials=10, sampler={"name": "random"}, init={"rule": True, "neighbours": 2}, **RULE)[0]
    assert len(again.trials) == len(trials)  # a resumed study enqueues no seed (nor baseline) a second time


def test_a_seed_the_space_cannot_express_is_refused_before_the_storage(tmp_path, trained):
    spec = tmp_path / "wide.json"
    spec.write_text(deepreshape_rule(40_000, resolution=16).to_json().replace('"width":240', '"width":96'))
    with pytest.raises(UserError, match=r"init.specs\[0\]: the space tiny cannot express it: ratio4 = 96/80"):
        run(tmp_path, n_trials=4, init={"specs": [str(spec)]})
    assert not (tmp_path / "run" / "study.db").exists() or not optuna.get_all_study_names(
        f"sqlite:///{tmp_path / 'run' / 'study.db'}")


def test_a_baseline_outside_the_space_is_trained_and_compared_but_never_a_sampler_observation(tmp_path, trained):
    space_doc = yaml.safe_load(TINY.read_text())
    space_doc["acts"]["granularity"] = "stage"          # one choice per stage: the rule's thinned stages need two
    (tmp_path / "stage.yaml").write_text(yaml.safe_dump(space_doc))
    result, config, _ = run(tmp_path, space=str(tmp_path / "stage.yaml"), n_trials=10,
                            sampler={"name": "nsga2", "population_size": 4}, **RULE)
    study, space = result.study, SearchSpace.load(tmp_path / "stage.yaml")
    rules = [t for t in study.trials if t.user_attrs.get("source") == "rule"]
    outside = [t for t in rules if "outside_space" in t.user_attrs]
    assert outside and all("cannot express it: act_stage" in t.user_attrs["outside_space"] for t in outside)
    assert all(t.state == optuna.trial.TrialState.FAIL and t.params == {} for t in outside)   # no sampler sees them
    table = pd.read_csv(tmp_path / "run" / "trials.csv")
    rows = table[table["number"].isin([t.number for t in outside])]
    assert set(rows["state"]) == {"COMPLETE"} and rows["accuracy"].notna().all()       # measured, in the reports
    compare = pd.read_csv(tmp_path / "run" / "compare.csv")
    assert sorted(compare["budget"]) == [3000, 6000] and compare["rule_accuracy"].notna().all()
    notes = (tmp_path / "run" / "compare_notes.txt").read_text()
    assert any(line.startswith("deepreshape@") and "is outside the space" in line and "never a sampler observation"
               in line for line in result.notes) and "is outside the space" in notes
    again = run(tmp_path, space=str(tmp_path / "stage.yaml"), n_trials=10,
                sampler={"name": "nsga2", "population_size": 4}, **RULE)[0]
    assert len(again.trials) == len(result.trials)                 # resumed: measured, so not enqueued again
    knobs = set(space.grid())
    assert set(make_sampler(config, space).infer_relative_search_space(study, study.ask())) == knobs
    with pytest.raises(UserError, match="cannot express it: act_stage.*init: seeds must be designs of the space"):
        run(tmp_path / "seeded", space=str(tmp_path / "stage.yaml"), n_trials=10, init={"rule": True}, **RULE)


def test_max_macs_candidates_are_costed_but_never_trained(tmp_path, trained):
    cap = 1_500_000
    result, _, _ = run(tmp_path, n_trials=14, sampler={"name": "random"}, budget={"max_macs": cap})
    trials = result.trials
    over = trials["macs"] > cap
    assert over.any() and (~over).any()
    assert trials.loc[over, "feasible"].eq(False).all() and trials.loc[over, "accuracy"].isna().all()
    assert trials.loc[over, "reason"].str.contains("MACs above max_macs").all()
    assert len(trained) == int((~over & trials["accuracy"].notna()).sum())
    constraints = [t.system_attrs for t in result.study.trials]
    assert all(any(k.endswith("macs_budget") for k in attrs) for attrs in constraints)
    # costed before training: an over-budget draw gives its slot to a new draw, and stays a COMPLETE infeasible
    # trial that samplers reading constraints learn from
    assert trials.loc[over, "reason"].str.startswith(OVER_BUDGET).all()
    assert set(trials.loc[over, "state"]) == {"COMPLETE"}
    assert int((~over).sum()) == 14
    facts = load_dashboard_data(tmp_path / "run").facts  # counted as re-drawn, as the run's summary does
    assert f"{len(trials)}: 14 complete, 0 fail, 0 pruned, {int(over.sum())} re-drawn" == facts["trials"]


def test_bins_spread_sampled_trials_over_the_window(tmp_path, trained):
    result, _, _ = run(tmp_path, n_trials=12, sampler={"name": "random"},
                       budget={"min_relus": 1000, "max_relus": 16000, "bins": 4})
    trials = result.trials
    redrawn = trials["reason"].map(redrawn_reason)
    aimed = trials.loc[~redrawn, "target_bin"].dropna().astype(int)
    assert sorted(aimed.value_counts()) == [3, 3, 3, 3]  # each bin aimed at in turn (a re-draw aims where it was)
    for row in trials[redrawn].itertuples():  # an over-budget draw's slot goes to the next trial, at the same bin
        assert row.reason.startswith(OVER_BUDGET) and row.target_bin == trials.set_index("number").loc[
            row.number + 1, "target_bin"]


def test_run_summary_shows_trials_per_bin(tmp_path, trained):
    from typer.testing import CliRunner

    import pisearch.cli.run  # noqa: F401  (registers the command)
    from pisearch.cli.app import app

    tmp_path.mkdir(parents=True, exist_ok=True)
    doc = {**BASE, "n_trials": 8, "sampler": {"name": "random"}, "budget": {"min_relus": 1000, "max_relus": 16000,
                                                                             "bins": 2}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    out = CliRunner().invoke(app, ["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run"), "--no-progress"])
    assert out.exit_code == 0, out.output
    line = next(x for x in out.output.splitlines() if x.startswith("searched trials per ReLU bin"))
    assert line.count("measured") == 2 and "1,000–" in line


def test_compare_seeds_give_verdicts_with_error_bars(tmp_path, trained):
    result, config, _ = run(tmp_path, n_trials=10, sampler={"name": "random"}, init={"rule": True}, compare={"seeds": 3},
                            **RULE)
    runs = pd.read_csv(tmp_path / "run" / "verdict_runs.csv")
    compare = pd.read_csv(tmp_path / "run" / "compare.csv").set_index("budget")
    assert set(runs["train_seed"]) == {4 + 1000, 4 + 2000, 4 + 3000}  # never the search's own seed (4)
    assert runs.groupby(["parent", "level"]).size().eq(3).all()
    for budget in (3000, 6000):
        row = compare.loc[budget]
        assert row["train_seeds"] == "1004,2004,3004" and row["verdict"] in ("win", "tie", "loss")
        assert not math.isnan(row["rule_accuracy_std"]) and not math.isnan(row["search_accuracy_mean"])
    # the seeded rule design is a contender of its own budget at worst: the search never loses to itself
    assert (compare["search_best_accuracy"] >= compare["rule_accuracy"]).all()
    assert set(compare["verdict"]) <= {"win", "tie"}
    # whether the fidelity separates the rule's budgets is said before the verdicts: notes, summary, dashboard
    (line,) = [n for n in result.notes if "-ReLU point vs its" in n]
    assert line in (tmp_path / "run" / "compare_notes.txt").read_text()
    page = dashboard_html(result.trials, {"study": "s"}, seed_runs=runs)
    assert "id='relu-sensitivity'" in page and html.escape(line) in page


def test_quickstart_study_is_valid_and_seeded():
    config, space = load_study_config(ROOT / "studies" / "quickstart.yaml")
    assert config.init.rule and config.baselines.deepreshape.budgets and config.compare.seeds >= 2
    quick = SearchSpace.load(space).with_budget(config.budget)
    for budget in config.baselines.deepreshape.budgets:
        assert count(deepreshape_rule(budget, resolution=quick.resolution)).macs <= quick.max_macs
        quick.params_of(deepreshape_rule(budget, resolution=quick.resolution))
