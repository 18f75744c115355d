import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

import pisearch.study.objective as objective_mod
from pisearch import __version__
from pisearch.errors import UserError
from pisearch.study import load_dashboard_data, load_study_config, run_study
from pisearch.study.config import OBJECTIVES, StudyConfig
from pisearch.study.runner import study_precision
from pisearch.study.slots import DUPLICATE
from pisearch.train import TrainResult

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "search_spaces" / "tiny.yaml"


# A study small enough to run in seconds (synthetic data, tiny space, 1 epoch on 96 images); other tests reuse it.
TINY_STUDY = {
    "name": "t",
    "space": str(TINY),
    "dataset": {"name": "synthetic", "resolution": 16},
    "fidelity": {"epochs": 1, "batch_size": 32, "train_subset": 96, "threads": 1},
    "sampler": {"name": "random"},
    "compare": {"seeds": 0},  # seed re-trainings: tests/test_search.py
}


def write_study(tmp_path, **overrides) -> Path:
    data = {**TINY_STUDY, "n_trials": 3, "seed": 3, **overrides}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(tmp_path, path=None, **kw):
    config, space = load_study_config(path or write_study(tmp_path))
    return run_study(config, space, out_dir=tmp_path / "run", progress=False, **kw)


def brute_front(df, objectives):
    ok = df[(df["state"] == "COMPLETE") & (df["feasible"] == True) & df["accuracy"].notna()]  # noqa: E712
    sign = np.array([-1 if OBJECTIVES[o] == "maximize" else 1 for o in objectives])
    v = ok[objectives].to_numpy(float) * sign
    keep = [not any((v[j] <= v[i]).all() and (v[j] < v[i]).any() for j in range(len(v))) for i in range(len(v))]
    return set(ok[keep]["number"])


def test_three_trial_study_writes_tables(tmp_path):
    result = run(tmp_path)
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    pareto = pd.read_csv(tmp_path / "run" / "pareto.csv")
    assert len(trials) == 3 and set(trials["state"]) == {"COMPLETE"}
    assert trials["accuracy"].between(0, 1).all()
    assert (trials["relus"] >= 0).all() and trials["spec_hash"].str.len().eq(12).all()
    assert set(pareto["number"]) == brute_front(trials, ["accuracy", "relus"])
    assert result.study.user_attrs["config_identity"]
    assert (tmp_path / "run" / "study.db").exists()
    assert result.study.user_attrs["pisearch_version"] == __version__  # which pisearch made the study, and each trial
    assert (trials["pisearch_version"] == __version__).all()


def held(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that hold a slot: all but re-drawn duplicates (the tiny space has few designs, so they happen)."""
    return trials[~trials["reason"].astype(str).str.startswith(DUPLICATE)]


def test_resume_adds_trials_without_redoing(tmp_path):
    path = write_study(tmp_path)
    first = run(tmp_path, path).trials
    second = run(tmp_path, path, n_trials=5).trials
    assert len(held(second)) == 5
    merged = first.merge(second, on="number", suffixes=("_a", "_b"))
    assert (merged["datetime_start_a"] == merged["datetime_start_b"]).all()
    assert (merged["accuracy_a"].fillna(-1) == merged["accuracy_b"].fillna(-1)).all()
    assert len(run(tmp_path, path, n_trials=5).trials) == len(second)  # nothing more to do


def test_same_seed_reproduces_trials(tmp_path):
    a = run(tmp_path / "a").trials
    b = run(tmp_path / "b").trials
    assert a["spec_hash"].tolist() == b["spec_hash"].tolist()
    assert a["accuracy"].tolist() == b["accuracy"].tolist()


@pytest.mark.parametrize("budget", [{"max_relus": 3000}, {"min_relus": 10**7}])
def test_infeasible_candidates_never_train(tmp_path, monkeypatch, budget):
    calls = []
    real = objective_mod.train_proxy

    def spy(model, *args, **kwargs):
        calls.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(objective_mod, "train_proxy", spy)
    path = write_study(tmp_path, budget=budget, n_trials=6)
    trials = run(tmp_path, path).trials
    feasible = trials["feasible"].astype(bool)
    inside = trials["relus"].between(budget.get("min_relus", 0), budget.get("max_relus", 10**12))
    assert (feasible == inside).all()
    if "min_relus" in budget:
        assert not feasible.any()
    assert len(calls) == int(feasible.sum())
    assert trials.loc[~feasible, "accuracy"].isna().all()
    assert trials.loc[~feasible, "reason"].str.contains("not trained").all()
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    for t in study.trials:
        assert (t.constraints["relu_budget"] > 0) == (not t.user_attrs["feasible"])


def test_diverged_trial_fails_with_reason_and_study_goes_on(tmp_path, monkeypatch):
    def diverge(*_a, **_k):
        return TrainResult(accuracy=float("nan"), accuracy_per_epoch=[], train_seconds=0.1, images_per_second=0.0,
                           status="diverged", reason="loss nan at epoch 0 step 3 (retried at lr/10)", retried=True)

    monkeypatch.setattr(objective_mod, "train_proxy", diverge)
    trials = run(tmp_path).trials
    assert len(trials) == 3 and set(trials["state"]) == {"FAIL"}
    assert trials["reason"].str.contains("loss nan").all()
    assert pd.read_csv(tmp_path / "run" / "pareto.csv").empty


def test_stale_running_trial_is_requeued(tmp_path):
    path = write_study(tmp_path)
    run(tmp_path, path, n_trials=1)
    storage = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    study = optuna.load_study(study_name="t", storage=storage)
    dead = study.ask()  # a trial whose process died: left RUNNING
    dead.set_user_attr("spec", json.loads(json.dumps(study.trials[0].user_attrs["spec"])))
    trials = run(tmp_path, path, n_trials=3).trials
    failed = trials[trials["number"] == dead.number].iloc[0]
    assert failed["state"] == "FAIL" and "re-run as trial" in failed["reason"]
    assert trials["state"].value_counts()["COMPLETE"] == 3  # the interrupted trial used up none of the 3
    rerun = trials[trials["retry_of"] == dead.number].iloc[0]
    assert rerun["state"] == "COMPLETE" and rerun["spec_hash"] == trials.loc[0, "spec_hash"]  # its spec re-ran


def test_baseline_cut_short_by_ctrl_c_is_trained_on_resume(tmp_path, monkeypatch):
    path = write_study(tmp_path, baselines={"deepreshape": {"budgets": [3000]}})
    real = objective_mod.TrialRunner.__call__

    def interrupt_the_rule_point(self, trial):
        if trial.user_attrs.get("source") == "rule":
            raise KeyboardInterrupt
        return real(self, trial)

    monkeypatch.setattr(objective_mod.TrialRunner, "__call__", interrupt_the_rule_point)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, path)
    monkeypatch.undo()
    trials = run(tmp_path, path).trials
    rule = trials[trials["source"] == "rule"]
    assert rule["state"].tolist() == ["FAIL", "COMPLETE"]  # enqueued again, trained once
    assert (pd.read_csv(tmp_path / "run" / "compare.csv")["rule_number"] == rule["number"].iloc[1]).all()
    assert len(run(tmp_path, path).trials) == len(trials)  # a further resume enqueues nothing


@pytest.mark.parametrize("override, message", [
    ({"colour": 1}, "colour: unknown key"),
    ({"n_trials": "many"}, "n_trials:"),
    ({"n_trials": 0}, "n_trials:"),
    ({"objectives": ["accuracy", "speed"]}, "objectives: unknown objective 'speed'"),
    ({"sampler": {"name": "cmaes"}}, "sampler.name:"),
    ({"space": "nope.yaml"}, "space: no such search-space file"),
    ({"budget": {"min_relus": 10, "max_relus": 5}}, "budget: min_relus 10 is larger"),
    ({"name": "bad name!"}, "name:"),
    ({"fidelity": {"epochs": -1}}, "fidelity.epochs:"),
])
def test_bad_study_file(tmp_path, override, message):
    path = write_study(tmp_path, **override)
    with pytest.raises(UserError) as err:
        load_study_config(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_name_clash_with_other_config(tmp_path):
    run(tmp_path, n_trials=1)
    other = write_study(tmp_path, seed=99)
    config, space = load_study_config(other)
    with pytest.raises(UserError, match="study name clash"):
        run_study(config, space, out_dir=tmp_path / "run", progress=False)


def test_keep_weights_stores_loadable_artifacts(tmp_path):
    import torch

    from pisearch.models import build
    from pisearch.spec import ArchSpec
    from pisearch.study.artifacts import WEIGHTS_ATTR, fetch_weights

    result = run(tmp_path, write_study(tmp_path, keep_weights=True, n_trials=2))
    trained = [t for t in result.study.trials if "accuracy" in t.user_attrs]
    assert trained and all(WEIGHTS_ATTR in t.user_attrs for t in trained)
    t = trained[0]
    model = build(ArchSpec.from_json(t.user_attrs["spec"]))
    model.load_state_dict(fetch_weights(t.user_attrs[WEIGHTS_ATTR], tmp_path / "run"))
    assert any(float(p.abs().sum()) > 0 for p in model.state_dict().values() if p.dtype == torch.float32)


def test_duplicate_spec_reuses_the_earlier_result(tmp_path, monkeypatch):
    calls = []
    real = objective_mod.train_proxy
    monkeypatch.setattr(objective_mod, "train_proxy", lambda *a, **k: calls.append(1) or real(*a, **k))
    path = write_study(tmp_path, n_trials=4, baselines={"deepreshape": {"budgets": [3000, 3000]}})
    trials = run(tmp_path, path).trials
    trained = trials[trials["accuracy"].notna()]
    assert trained["spec_hash"].nunique() < len(trained)  # the rule point is enqueued twice
    assert len(calls) == trained["spec_hash"].nunique()
    for _, group in trained.groupby("spec_hash"):
        assert group["accuracy"].nunique() == 1
        assert (group["reused_from"].notna()).sum() == len(group) - 1


def test_linearize_stage_records_method_points_on_the_front(tmp_path):
    from pisearch.cost import count
    from pisearch.spec import ArchSpec

    stage = {"methods": ["naive", "snl"], "budgets": [0.5], "top": 1,
             "settings": {"search_epochs": 1, "finetune_epochs": 1}}
    path = write_study(tmp_path, n_trials=4, keep_weights=True, linearize=stage,
                       sampler={"name": "random"}, seed=5)
    trials = run(tmp_path, path).trials
    lin = trials[trials["source"].isin(["naive", "snl"])]
    assert sorted(lin["source"]) == ["naive", "snl"]
    for _, row in lin.iterrows():
        parent = trials[(trials["number"] == row["parent"]) & (trials["source"] == "search")].iloc[0]
        assert row["relus"] == row["budget"] == int(0.5 * parent["relus"])  # pixel granularity: exact budget
        assert count(ArchSpec.from_json(row["spec"])).relus == row["relus"]
        assert 0 <= row["accuracy"] <= 1
    again = run(tmp_path, path).trials  # resume: nothing is linearized twice
    assert len(again) == len(trials)
    # fair fronts: linearized trials trained beyond their level are their own series, with their training
    front = pd.read_csv(tmp_path / "run" / "pareto.csv")
    assert not front["source"].isin(["naive", "snl"]).any()
    table = pd.read_csv(tmp_path / "run" / "linearized.csv")
    assert sorted(table["source"]) == ["naive", "snl"]
    assert (table["training_ratio"] > 0).all() and table["parent_accuracy"].notna().all()


def test_a_linearized_trial_never_dominates_the_proxy_front():
    """A linearized trial trained beyond its level (here 10× its parent) that dominates proxy-trained points is
    kept off the front, the export pick and the comparison, and reported beside them with its training."""
    from pisearch.report import linearized_table
    from pisearch.study import front_of
    from pisearch.study.select import pick_trial

    rows = pd.DataFrame({
        "number": [0, 1, 2, 3], "state": ["COMPLETE"] * 4, "feasible": [True] * 4, "level": [0] * 4,
        "source": ["search", "search", "rule", "snl"], "parent": [np.nan, np.nan, np.nan, 1],
        "accuracy": [0.80, 0.85, 0.82, 0.95], "relus": [1000, 4000, 3000, 500], "train_seconds": [10, 12, 11, 120],
        "spec": ['{"a": 0}', '{"a": 1}', '{"a": 2}', '{"a": 3}'], "spec_hash": ["a", "b", "c", "d"],
        "budget": [np.nan, np.nan, 3000, 500],
    })
    front = front_of(rows, ["accuracy", "relus"])
    assert sorted(front["number"]) == [0, 1, 2]  # the snl trial (0.95 at 500 ReLUs) would dominate all three
    assert int(pick_trial(rows, budget=5000)["number"]) == 1
    assert int(pick_trial(rows, trial=3)["number"]) == 3  # still exportable by number
    table = linearized_table(rows)
    assert table[["number", "parent", "parent_train_seconds", "training_ratio"]].values.tolist() == [[3, 1, 12, 10]]


# --- precision: a study trains in one precision, whatever machine resumes it ---------------------------------------

@pytest.mark.parametrize("created, resumed", [("1", "0"), ("0", "1")])
def test_a_study_keeps_the_precision_it_was_created_with(tmp_path, monkeypatch, capsys, created, resumed):
    precision = {"1": "bf16", "0": "fp32"}[created]
    monkeypatch.setenv("PISEARCH_BF16", created)                  # auto resolves to `precision` on this machine
    path = write_study(tmp_path, n_trials=2)
    first = run(tmp_path, path)
    assert first.study.user_attrs["precision"] == precision
    monkeypatch.setenv("PISEARCH_BF16", resumed)                  # resumed on a machine of the other kind
    config, space = load_study_config(path)
    again = run_study(config, space, n_trials=3, out_dir=tmp_path / "run", progress=False)
    note = capsys.readouterr().err
    assert f"note: study 't' trains in {precision}, the precision it was created with" in note
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    trials = held(trials)
    assert len(trials) == 3 and list(trials["precision"]) == [precision] * 3
    assert {json.loads(f)["precision"] for f in trials["fidelity"]} == {precision}
    assert again.study.user_attrs["precision"] == precision
    assert load_dashboard_data(tmp_path / "run").facts["precision"] == f"{precision} (trained: 3 {precision})"


def test_naming_the_precision_auto_resolved_to_is_the_same_study(tmp_path, monkeypatch):
    monkeypatch.setenv("PISEARCH_BF16", "1")
    run(tmp_path, write_study(tmp_path, n_trials=1, fidelity={**TINY_STUDY["fidelity"], "precision": "fp32"}))
    config, space = load_study_config(write_study(tmp_path, n_trials=2))    # precision: auto (the default)
    run_study(config, space, out_dir=tmp_path / "run", progress=False)      # resumes, in the study's fp32
    assert list(held(pd.read_csv(tmp_path / "run" / "trials.csv"))["precision"]) == ["fp32", "fp32"]
    config, space = load_study_config(write_study(tmp_path, fidelity={**TINY_STUDY["fidelity"], "precision": "bf16"}))
    with pytest.raises(UserError, match="study name clash.*differs in: fidelity"):
        run_study(config, space, out_dir=tmp_path / "run", progress=False)


def test_a_study_of_an_older_pisearch_keeps_the_precision_its_config_names(tmp_path, monkeypatch):
    monkeypatch.setenv("PISEARCH_BF16", "1")
    config = load_study_config(write_study(tmp_path))[0]
    older = SimpleNamespace(user_attrs={"config": json.dumps({"fidelity": {"precision": "fp32"}})})
    assert study_precision(older, config) == "fp32"                # the old default, stored explicitly
    assert study_precision(SimpleNamespace(user_attrs={}), config) == "bf16"    # new: this machine's auto
    recorded = SimpleNamespace(user_attrs={"precision": "fp32", "config": json.dumps({"fidelity": {}})})
    assert study_precision(recorded, config) == "fp32"


def test_every_copy_of_the_config_trains_with_the_study_seed(tmp_path):
    """A `--jobs` worker and a distributed worker get the config as JSON; they trained with seed 0 instead of the
    study seed, so a study's accuracies depended on how many processes ran it."""
    config, _ = load_study_config(write_study(tmp_path, seed=7, fidelities=[{"epochs": 2}]))
    copy = StudyConfig.model_validate(json.loads(json.dumps(config.model_dump(mode="json"))))
    assert [f.seed for f in config.levels] == [f.seed for f in copy.levels] == [7, 7]
    explicit, _ = load_study_config(write_study(tmp_path, seed=7, fidelity={**TINY_STUDY["fidelity"], "seed": 2}))
    assert explicit.levels[0].seed == 2


def test_a_study_stored_by_the_previous_pisearch_resumes(tmp_path):
    """Its identity has no sampler options and an unset training seed stored as 0 (its precision, with no recorded
    one, is its stored config's: test_a_study_of_an_older_pisearch_keeps_the_precision_its_config_names)."""
    path = write_study(tmp_path, n_trials=1)                 # seed 3
    first = run(tmp_path, path)
    identity = json.loads(first.study.user_attrs["config_identity"])
    identity["sampler"].pop("options", None)
    identity["fidelity"]["seed"] = 0
    first.study.set_user_attr("config_identity", json.dumps(identity, sort_keys=True))
    again = run(tmp_path, path, n_trials=2)                  # the same study: no name clash
    assert len(held(again.trials)) == 2
    config, space = load_study_config(write_study(tmp_path, n_trials=2, fidelity={**TINY_STUDY["fidelity"], "seed": 2}))
    with pytest.raises(UserError, match="differs in: fidelity"):                # another training seed is another study
        run_study(config, space, out_dir=tmp_path / "run", progress=False)
