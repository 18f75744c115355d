import json

import optuna
import pandas as pd
import pytest

from pisearch.errors import UserError
from pisearch.spec import resnet
from pisearch.study import load_study_config, run_study
from pisearch.study.objective import TrialRunner
from pisearch.study.promotion import band_parents
from pisearch.study.records import state_summary
from tests.test_study import write_study


def _band_by_hand(rows: pd.DataFrame, epsilon: float) -> set[int]:
    ok = rows[(rows["state"] == "COMPLETE") & rows["feasible"].astype(bool) & rows["accuracy"].notna()
              & rows["source"].isin(["search", "rule", "net"])]
    keep = set()
    for _, t in ok.iterrows():
        better = ok[(ok["accuracy"] > t["accuracy"] + epsilon) & (ok["relus"] <= t["relus"])
                    | (ok["accuracy"] >= t["accuracy"] + epsilon) & (ok["relus"] < t["relus"])]
        if better.empty:
            keep.add(t["number"])
    return {int(n) for n in keep}


def test_band_parents_is_the_common_front_plus_epsilon():
    rows = pd.DataFrame({
        "number": [0, 1, 2, 3, 4, 5, 6, 7], "state": ["COMPLETE"] * 8, "feasible": [True] * 8,
        "source": ["search", "search", "search", "search", "rule", "rule", "net", "snl"],
        "accuracy": [0.90, 0.89, 0.80, 0.95, 0.5, 0.94, 0.935, 0.99], "relus": [100, 120, 130, 300, 999, 200, 250, 10],
    })
    # rule 4 is dominated far beyond epsilon: not re-trained; rule 5 is on the front; the net 6 is within 0.02
    # of it; the linearized trial 7 is on the front but linearized trials are never re-trained
    assert band_parents(rows, ["accuracy", "relus"], 0.0) == [0, 3, 5]
    assert band_parents(rows, ["accuracy", "relus"], 0.02) == [0, 1, 3, 5, 6]
    assert set(band_parents(rows, ["accuracy", "relus"], 0.02)) == _band_by_hand(rows, 0.02)


def run2(tmp_path, **kw):
    kw = {"promotion": {"epsilon": 0.05}, **kw}
    path = write_study(tmp_path, n_trials=6, fidelities=[{"epochs": 2}],
                       baselines={"deepreshape": {"budgets": [3000]}}, **kw)
    config, space = load_study_config(path)
    return run_study(config, space, out_dir=tmp_path / "run", progress=False)


def test_two_level_study_promotes_exactly_the_band(tmp_path):
    trials = run2(tmp_path).trials
    level0, level1 = trials[trials["level"] == 0], trials[trials["level"] == 1]
    assert len(level0) == 6
    assert set(level1["number"]) == _band_by_hand(level0, 0.05)
    assert (level1["state"] == "COMPLETE").all()
    assert level1["fidelity"].str.contains('"epochs": 2').all() and level0["fidelity"].str.contains('"epochs": 1').all()
    saved = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert sorted(saved["level"].unique()) == [0, 1]
    assert state_summary(saved) == f"{len(level0)} complete; level 1: {len(level1)} complete"
    pareto = pd.read_csv(tmp_path / "run" / "pareto.csv")
    promoted = set(level1["number"])
    assert (pareto.loc[pareto["number"].isin(promoted), "level"] == 1).all()
    # resume: nothing is re-trained and nothing promoted is lost
    again = run2(tmp_path).trials
    pd.testing.assert_frame_equal(
        again[again["level"] == 1][["number", "accuracy", "datetime_start"]].reset_index(drop=True),
        level1[["number", "accuracy", "datetime_start"]].reset_index(drop=True))


def test_warm_start_continues_from_the_level_below(tmp_path):
    """A warm-started promotion trains only the epochs its level adds, from the parent's kept weights: retraining
    those weights by hand for that one epoch gives the recorded accuracy exactly."""
    from pisearch.data import load_dataset
    from pisearch.spec import ArchSpec
    from pisearch.study.artifacts import fetch_weights
    from pisearch.train import seeded_build, train_proxy

    trials = run2(tmp_path).trials
    level0, level1 = trials[trials["level"] == 0].set_index("number"), trials[trials["level"] == 1]
    assert level0["weights_artifact_id"].notna().all()  # kept although keep_weights is off: levels need them
    assert len(level1) and (level1["warm_start_epochs"] == 1).all()
    assert (level1["warm_start_weights"].to_numpy() == level0.loc[level1["number"], "weights_artifact_id"]).all()
    assert level1["accuracy_per_epoch"].map(lambda a: len(json.loads(a))).eq(1).all()
    config, _ = load_study_config(tmp_path / "study.yaml")
    row = level1.iloc[0]
    spec = ArchSpec.from_json(row["spec"])
    splits = load_dataset("synthetic", resolution=16, channels=spec.in_channels)
    fidelity = config.levels[1]
    model = seeded_build(spec, fidelity)
    model.load_state_dict(fetch_weights(row["warm_start_weights"], tmp_path / "run"))
    result = train_proxy(model, splits.train, splits.val, fidelity.model_copy(update={"epochs": 1}))
    assert result.accuracy == row["accuracy"]


def test_level_two_warm_starts_from_level_one(tmp_path):
    path = write_study(tmp_path, n_trials=4, fidelities=[{"epochs": 2}, {"epochs": 3}], promotion={"epsilon": 0.05})
    config, space = load_study_config(path)
    trials = run_study(config, space, out_dir=tmp_path / "run", progress=False).trials
    level1, level2 = (trials[trials["level"] == k].set_index("number") for k in (1, 2))
    assert len(level2) and (level2["warm_start_epochs"] == 2).all()
    assert (level2["warm_start_weights"] == level1.loc[level2.index, "weights_artifact_id"]).all()


def test_study_stored_by_an_older_pisearch_resumes(tmp_path):
    """Identities stored before promotion.warm_start existed (or listing keys that may now change) still match."""
    run2(tmp_path)
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    old = json.loads(study.user_attrs["config_identity"])
    old["promotion"] = {"epsilon": 0.05}
    study.set_user_attr("config_identity", json.dumps(old, sort_keys=True))
    assert len(run2(tmp_path).trials)  # no "study name clash"
    old["seed"] = 99
    study.set_user_attr("config_identity", json.dumps(old, sort_keys=True))
    with pytest.raises(UserError, match="differs in: seed"):
        run2(tmp_path)


def test_without_warm_start_levels_retrain_from_scratch(tmp_path):
    trials = run2(tmp_path, promotion={"epsilon": 0.05, "warm_start": False}).trials
    level0, level1 = trials[trials["level"] == 0], trials[trials["level"] == 1]
    assert len(level1) and level1["accuracy_per_epoch"].map(lambda a: len(json.loads(a))).eq(2).all()
    assert "warm_start_weights" not in trials or trials["warm_start_weights"].isna().all()
    assert "weights_artifact_id" not in level0 or level0["weights_artifact_id"].isna().all()


def test_warm_start_needs_growing_epochs(tmp_path):
    path = write_study(tmp_path, fidelities=[{"epochs": 2}, {"train_subset": 128}])
    with pytest.raises(UserError, match=r"promotion: warm_start: level 2 \(fidelities\[1\]\) has 2 epochs"):
        load_study_config(path)
    load_study_config(write_study(tmp_path, fidelities=[{"epochs": 2}, {"train_subset": 128}],
                                  promotion={"warm_start": False}))


@pytest.mark.parametrize("crash, left", [(KeyboardInterrupt, "FAIL"), (SystemExit, "RUNNING")])
def test_promotion_cut_short_is_trained_on_resume(tmp_path, monkeypatch, crash, left):
    """Ctrl-C in a promotion (Optuna fails the trial) or a process killed in it (the trial stays RUNNING): the
    resumed run trains that parent at the level again, and every band parent ends with one complete trial."""
    real = TrialRunner.__call__

    def crash_first_promotion(self, trial):
        if self.level == 1:
            raise crash()
        return real(self, trial)

    monkeypatch.setattr(TrialRunner, "__call__", crash_first_promotion)
    with pytest.raises(crash):
        run2(tmp_path)
    storage = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    assert [t.state.name for t in optuna.load_study(study_name="t@L1", storage=storage).trials][0] == left
    monkeypatch.undo()
    trials = run2(tmp_path).trials
    level0, level1 = trials[trials["level"] == 0], trials[trials["level"] == 1]
    done = level1[level1["state"] == "COMPLETE"]
    assert sorted(done["number"]) == sorted(_band_by_hand(level0, 0.05))
    assert (level1["state"] == "FAIL").sum() == 1 and len(level1) == len(done) + 1


def test_a_parent_enqueued_twice_at_once_trains_once(tmp_path):
    """Two workers that enqueue one parent at the same moment: only the lower-numbered trial trains."""
    from pisearch.study.promotion import PARENT, train_waiting
    from pisearch.study.runner import prepare_study

    config, space = load_study_config(write_study(tmp_path, n_trials=1))
    prep = prepare_study(config, space, out_dir=tmp_path / "run")
    study = prep.store.level_study("t", 1, config.directions)
    tiny = resnet((4, 8), (1, 1), resolution=16, num_classes=prep.splits.train.num_classes)
    for _ in range(2):
        study.enqueue_trial({PARENT: 0}, user_attrs={PARENT: 0, "spec": tiny.to_json(), "source": "search"})
    runner = TrialRunner(config, prep.space, prep.splits, config.levels[0], str(tmp_path / "run"),
                         level=1)
    assert train_waiting(runner, prep.store, study) == 1
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "PRUNED"]
    assert "duplicate (parent 0): trial 0 of this stage has it" in study.trials[1].user_attrs["reason"]
    # the lower trial is still running elsewhere when this worker pops the higher one: it gives way
    for _ in range(2):
        study.enqueue_trial({PARENT: 1}, user_attrs={PARENT: 1, "spec": tiny.to_json(), "source": "search"})
    elsewhere = study.ask()  # another worker took trial 2 and is training it
    assert elsewhere.number == 2
    assert train_waiting(runner, prep.store, study) == 0
    assert study.trials[3].state.name == "PRUNED" and "trial 2 of this stage has it" in study.trials[3].user_attrs["reason"]


def test_bad_level_override_names_the_level(tmp_path):
    path = write_study(tmp_path, fidelities=[{"epochs": 2}, {"epoch": 3}])
    with pytest.raises(UserError, match=r"fidelities: level 2: epoch: unknown key"):
        load_study_config(path)


def test_export_and_dashboard_read_every_level_of_a_promoted_run(tmp_path):
    from pisearch.study.dashboard_data import load_dashboard_data
    from pisearch.study.select import open_run

    from pisearch.study.select import trial_model

    run2(tmp_path)
    run = open_run(str(tmp_path / "run"))  # the level study "t@L1" is not taken for a second study
    assert sorted(run.trials["level"].unique()) == [0, 1]
    promoted = run.trials[run.trials["level"] == 1].iloc[0]
    _, _, metrics = trial_model(run, promoted)  # its kept weights, which say they were warm-started
    assert metrics["level"] == 1 and "first 1 epochs were trained at the level below" in metrics["weights"]
    assert sorted(load_dashboard_data(str(tmp_path / "run")).trials["level"].unique()) == [0, 1]


def test_a_level_study_without_trials_reads_as_no_rows():
    """A level (or check) study another worker has just created holds no trial yet: its rows are empty, not a
    KeyError in the supervisor's report refresh (seen under --jobs 2)."""
    from pisearch.study.store._frames import level_rows

    study = optuna.create_study(directions=["maximize", "minimize"])
    for level in (1, -1):
        rows = level_rows(study, level)
        assert rows.empty and {"number", "level", "level_trial"} <= set(rows.columns)
