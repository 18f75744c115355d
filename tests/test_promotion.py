import numpy as np
import pandas as pd
import pytest

from pisearch.errors import UserError
from pisearch.study import load_study_config, run_study
from pisearch.study.promotion import band_parents
from tests.test_study import write_study


def _band_by_hand(rows: pd.DataFrame, epsilon: float) -> set[int]:
    ok = rows[(rows["state"] == "COMPLETE") & rows["feasible"].astype(bool) & rows["accuracy"].notna()]
    search = ok[ok["source"] == "search"]
    keep = set(ok.loc[ok["source"] != "search", "number"])
    for _, t in search.iterrows():
        better = search[(search["accuracy"] > t["accuracy"] + epsilon) & (search["relus"] <= t["relus"])
                        | (search["accuracy"] >= t["accuracy"] + epsilon) & (search["relus"] < t["relus"])]
        if better.empty:
            keep.add(t["number"])
    return {int(n) for n in keep}


def test_band_parents_front_plus_epsilon_and_baselines():
    rows = pd.DataFrame({
        "number": [0, 1, 2, 3, 4], "state": ["COMPLETE"] * 5, "feasible": [True] * 5,
        "source": ["search", "search", "search", "search", "rule"],
        "accuracy": [0.90, 0.89, 0.80, 0.95, 0.5], "relus": [100, 120, 130, 300, 999],
    })
    assert band_parents(rows, ["accuracy", "relus"], 0.0) == [0, 3, 4]
    assert band_parents(rows, ["accuracy", "relus"], 0.02) == [0, 1, 3, 4]
    assert set(band_parents(rows, ["accuracy", "relus"], 0.02)) == _band_by_hand(rows, 0.02)


def run2(tmp_path, **kw):
    path = write_study(tmp_path, n_trials=6, fidelities=[{"epochs": 2}], promotion={"epsilon": 0.05},
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
    pareto = pd.read_csv(tmp_path / "run" / "pareto.csv")
    promoted = set(level1["number"])
    assert (pareto.loc[pareto["number"].isin(promoted), "level"] == 1).all()
    # resume: nothing is re-trained and nothing promoted is lost
    again = run2(tmp_path).trials
    pd.testing.assert_frame_equal(
        again[again["level"] == 1][["number", "accuracy", "datetime_start"]].reset_index(drop=True),
        level1[["number", "accuracy", "datetime_start"]].reset_index(drop=True))


def test_bad_level_override_names_the_level(tmp_path):
    path = write_study(tmp_path, fidelities=[{"epochs": 2}, {"epoch": 3}])
    with pytest.raises(UserError, match=r"fidelities: level 2: epoch: unknown key"):
        load_study_config(path)


def test_export_and_dashboard_read_every_level_of_a_promoted_run(tmp_path):
    from pisearch.study.dashboard_data import load_dashboard_data
    from pisearch.study.select import open_run

    run2(tmp_path)
    run = open_run(str(tmp_path / "run"))  # the level study "t@L1" is not taken for a second study
    assert sorted(run.trials["level"].unique()) == [0, 1]
    assert sorted(load_dashboard_data(str(tmp_path / "run")).trials["level"].unique()) == [0, 1]
