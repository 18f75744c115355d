import math

import numpy as np
import pandas as pd
import pytest

from pisearch.errors import UserError
from pisearch.report.compare import (
    COMPARE_COLUMNS, accuracy_by_width, compare_table, hypervolume_vs_rule, relus_to_reach, stage_relu_share,
)
from pisearch.rules import deepreshape_rule
from pisearch.spec import net
from pisearch.spec.nets import hybrenet

NAN = math.nan


def spec(i: int) -> str:
    """A distinct valid spec per i (compare_table only uses it as an identity)."""
    return hybrenet(8, (2, i, 3)).to_json()


def frame(rows):
    cols = ["number", "state", "source", "level", "relus", "accuracy", "budget", "train_seconds", "spec"]
    df = pd.DataFrame(rows, columns=cols)
    df["label"] = [f"{s}-{n}" for s, n in zip(df["source"], df["number"])]
    return df


TRIALS = frame([
    (0, "COMPLETE", "search", 0, 10_000, 0.50, NAN, 10, spec(1)),
    (1, "COMPLETE", "search", 0, 20_000, 0.60, NAN, 10, spec(2)),
    (2, "COMPLETE", "search", 0, 40_000, 0.70, NAN, 10, spec(3)),
    (3, "COMPLETE", "search", 0, 80_000, 0.80, NAN, 10, spec(4)),
    (4, "COMPLETE", "search", 0, 30_000, 0.55, NAN, 10, spec(5)),   # dominated
    (5, "FAIL", "search", 0, 5_000, NAN, NAN, 3, spec(6)),
    (6, "COMPLETE", "rule", 0, 46_000, 0.65, 50_000, 12, spec(7)),
    (7, "COMPLETE", "rule", 0, 150_000, 0.90, 200_000, 20, spec(8)),
    (8, "COMPLETE", "rule", 0, 8_000, 0.30, 9_000, 5, spec(9)),
    (9, "COMPLETE", "search", 1, 40_000, 0.75, NAN, 30, spec(3)),   # trial 2 promoted to level 1
    (10, "COMPLETE", "rule", 1, 46_000, 0.68, 50_000, 25, spec(7)),  # rule point 6 promoted to level 1
    (11, "COMPLETE", "rule", 0, 46_000, 0.65, 60_000, 12, spec(10)),
    (12, "COMPLETE", "net", 0, 557_056, 0.95, NAN, 50, spec(11)),    # neither side
    (13, "COMPLETE", "rule", 0, 46_000, 0.65, 70_000, 12, spec(12)),
    (14, "COMPLETE", "rule", 2, 46_000, 0.99, 70_000, 40, spec(12)),  # no searched trial at level 2
])


def test_compare_table_hand_computed():
    t = compare_table(TRIALS).set_index("budget")
    assert list(t.index) == [9_000, 50_000, 60_000, 70_000, 200_000]
    assert (t["search_train_seconds"] == 5 * 10 + 3 + 30).all()

    low = t.loc[9_000]  # nothing searched at ≤ 8,000 ReLUs; 0.30 is below the front's first point (10K, 0.50)
    assert math.isnan(low["search_best_accuracy"]) and math.isnan(low["search_minus_rule"])
    assert low["search_relus_at_iso_accuracy"] == 10_000
    assert low["relu_saving_at_iso_accuracy"] == pytest.approx(0.8)
    assert (low["level"], low["n_search"], low["rule_train_seconds"]) == (0, 5, 5)

    mid = t.loc[60_000]  # 0.65 halfway between (20K, 0.60) and (40K, 0.70): geometric mean in log space
    assert mid["search_best_number"] == 2 and mid["search_best_accuracy"] == 0.70
    assert mid["search_minus_rule"] == pytest.approx(0.05)
    assert mid["search_relus_at_iso_accuracy"] == pytest.approx(math.sqrt(20_000 * 40_000))
    assert mid["relu_saving_at_iso_accuracy"] == pytest.approx(46_000 / math.sqrt(20_000 * 40_000))

    alone = t.loc[70_000]  # the rule alone at level 2: compared at level 0, the highest level both have
    assert (alone["level"], alone["rule_accuracy"], alone["search_best_accuracy"]) == (0, 0.65, 0.70)
    assert alone["rule_train_seconds"] == 12 + 40

    promoted = t.loc[50_000]  # both sides measured at level 1: compared there, against level-1 trials only
    assert (promoted["level"], promoted["n_search"]) == (1, 1)
    assert promoted["rule_accuracy"] == 0.68 and promoted["rule_number"] == 10
    assert promoted["search_best_number"] == 9 and promoted["search_minus_rule"] == pytest.approx(0.07)
    assert promoted["relu_saving_at_iso_accuracy"] == pytest.approx(46_000 / 40_000)
    assert promoted["rule_train_seconds"] == 12 + 25

    high = t.loc[200_000]  # front tops out at 0.80 < 0.90
    assert high["search_best_number"] == 3 and high["search_minus_rule"] == pytest.approx(-0.10)
    assert math.isnan(high["relu_saving_at_iso_accuracy"])


def test_compare_table_without_rule_points_is_empty():
    t = compare_table(TRIALS[TRIALS["source"] != "rule"])
    assert t.empty and list(t.columns) == COMPARE_COLUMNS


def test_relus_to_reach_interpolates_on_the_front_only():
    pts = pd.DataFrame({"relus": [100, 1_000, 1_000, 500, 10_000], "accuracy": [0.2, 0.4, 0.4, 0.1, 0.8]})
    assert relus_to_reach(pts, 0.4) == pytest.approx(1_000)
    assert relus_to_reach(pts, 0.6) == pytest.approx(10 ** 3.5)  # halfway 0.4→0.8 = halfway 10³→10⁴ in log
    assert relus_to_reach(pts, 0.05) == 100
    assert math.isnan(relus_to_reach(pts, 0.81))
    assert math.isnan(relus_to_reach(pts.iloc[:0], 0.5))


def test_hypervolume_vs_rule_log_relus():
    df = frame([
        (0, "COMPLETE", "search", 0, 10_000, 0.5, NAN, 1, spec(1)),
        (1, "COMPLETE", "search", 0, 100_000, 0.6, NAN, 1, spec(2)),
        (2, "COMPLETE", "search", 0, 1_000_000, 0.8, NAN, 1, spec(3)),
        (3, "COMPLETE", "rule", 0, 100_000, 0.55, 120_000, 1, spec(4)),
        (4, "COMPLETE", "search", 1, 100_000, 0.9, NAN, 1, spec(2)),
        (5, "COMPLETE", "rule", 1, 100_000, 0.6, 120_000, 1, spec(4)),
    ])
    hv = hypervolume_vs_rule(df)
    # reference (accuracy 0, 10 × 1e6 ReLUs = 7 decades); search: 0.8·1 + 0.6·1 + 0.5·1; rule: 0.55·2
    assert hv["level"] == 0 and hv["reference_relus"] == 10_000_000
    assert hv["search_hypervolume"] == pytest.approx(1.9)
    assert hv["rule_hypervolume"] == pytest.approx(1.1)
    assert hv["ratio"] == pytest.approx(1.9 / 1.1)
    assert (hv["n_search"], hv["n_rule"]) == (3, 1)
    hv1 = hypervolume_vs_rule(df, level=1)  # reference 10 × 1e5 = 6 decades
    assert hv1["search_hypervolume"] == pytest.approx(0.9 * 1) and hv1["rule_hypervolume"] == pytest.approx(0.6)


def test_accuracy_by_width_uses_highest_level():
    hyb, r18 = net("hybrenet_16_553").to_json(), net("resnet18").to_json()
    df = frame([
        (0, "COMPLETE", "search", 0, 343_040, 0.60, NAN, 1, hyb),
        (0, "COMPLETE", "search", 1, 343_040, 0.70, NAN, 1, hyb),
        (1, "COMPLETE", "net", 0, 557_056, 0.75, NAN, 1, r18),
        (2, "COMPLETE", "rule", 0, 343_040, 0.65, 350_000, 1, hyb),  # same spec, other source: kept
        (3, "FAIL", "search", 0, 1_000, NAN, NAN, 1, r18),
    ])
    t = accuracy_by_width(df)
    assert list(t["profile"]) == ["2,2,2", "5,5,3", "5,5,3"]
    assert list(t["base_width"]) == [64, 16, 16]
    assert t.iloc[0]["widths"] == "64-128-256-512"
    searched = t[t["source"] == "search"].iloc[0]
    assert (searched["accuracy"], searched["level"]) == (0.70, 1)


def test_stage_relu_share():
    culled = deepreshape_rule(15_000).to_json()  # only Stage 3's post-add ReLUs survive
    linear = hybrenet(8, (2, 5, 3)).to_json().replace('"relu"', '"identity"')
    df = frame([
        (0, "COMPLETE", "search", 0, 343_040, 0.6, NAN, 1, net("hybrenet_16_553").to_json()),
        (1, "COMPLETE", "rule", 0, 10_240, 0.4, 15_000, 1, culled),
        (2, "COMPLETE", "search", 0, 0, 0.1, NAN, 1, linear),
    ])
    s = stage_relu_share(df).set_index("number")
    assert s.loc[0, "stem"] == pytest.approx(16_384 / 343_040)  # REFERENCES.md §2 split
    assert s.loc[0, "stage3"] == pytest.approx(102_400 / 343_040)
    stages = ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert s.loc[0, stages].sum() == pytest.approx(1.0)
    assert s.loc[1, "stage3"] == 1.0 and s.loc[1, ["stem", "stage1", "stage2", "stage4"]].sum() == 0
    assert s.loc[2, "relus"] == 0 and np.isnan(s.loc[2, stages].to_numpy(float)).all()


def test_bad_inputs():
    with pytest.raises(UserError, match="missing column.*relus"):
        compare_table(TRIALS.drop(columns=["relus"]))
    bad = TRIALS.copy()
    bad.loc[0, "spec"] = '{"stages": []}'
    with pytest.raises(UserError, match="trials table spec"):
        accuracy_by_width(bad)
    assert stage_relu_share(TRIALS.iloc[:0]).empty


def test_zero_relu_front_point_counts_as_one_relu():
    import warnings

    from pisearch.report.compare import relus_to_reach

    points = pd.DataFrame({"relus": [0, 100, 10_000], "accuracy": [0.5, 0.7, 0.9]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert relus_to_reach(points, 0.4) == 1.0
        assert relus_to_reach(points, 0.6) == pytest.approx(10.0)  # halfway between log10(1) and log10(100)


SENSITIVITY = frame([
    (0, "COMPLETE", "rule", 0, 2_560, 0.80, 3_000, 10, spec(1)),
    (1, "COMPLETE", "rule", 0, 9_216, 0.81, 10_000, 10, spec(2)),
    (2, "COMPLETE", "rule", 0, 23_296, 0.82, 24_000, 10, spec(3)),
    (3, "COMPLETE", "search", 0, 5_000, 0.79, NAN, 10, spec(4)),
])


def seed_runs(accuracy: dict[int, list[float]]) -> pd.DataFrame:
    """Completed seed re-trainings (seeds 1000, 2000, …) of level-0 trials: trial number → accuracy per seed."""
    return pd.DataFrame([{"parent": n, "level": 0, "train_seed": 1000 * (k + 1), "state": "COMPLETE",
                          "accuracy": a, "train_seconds": 1.0} for n, accs in accuracy.items()
                         for k, a in enumerate(accs)])


def test_relu_sensitivity_says_whether_the_fidelity_separates_the_rules_budgets():
    from pisearch.report import relu_sensitivity

    # the most-ReLU point (trial 2) clearly ahead of the fewest-ReLU one (trial 0), same seeds: the fidelity separates
    runs = seed_runs({0: [0.80, 0.81, 0.79], 2: [0.85, 0.87, 0.86]})
    win = relu_sensitivity(compare_table(SENSITIVITY, runs), runs)
    assert (win["most_relus"], win["fewest_relus"], win["seeds"]) == (23_296, 2_560, 3)
    assert win["verdict"] == "win" and win["difference"] == pytest.approx(0.06)
    assert win["text"].startswith("the fidelity separates") and "23,296-ReLU point vs its 2,560-ReLU" in win["text"]

    # noise only (differences of both signs): a tie, reported as a warning that ties mean "not separable here"
    runs = seed_runs({0: [0.80, 0.82, 0.79], 2: [0.81, 0.80, 0.80]})
    tie = relu_sensitivity(compare_table(SENSITIVITY, runs), runs)
    assert tie["verdict"] == "tie" and tie["low"] < 0 < tie["high"]
    assert tie["text"].startswith("warning:") and "not separable here" in tie["text"]

    # more ReLUs clearly worse: the proxy is too short for this range
    runs = seed_runs({0: [0.80, 0.81, 0.82], 2: [0.70, 0.71, 0.71]})
    assert relu_sensitivity(compare_table(SENSITIVITY, runs), runs)["verdict"] == "loss"

    # without seed runs: the single-seed difference and no verdict; one rule point: nothing to say
    single = relu_sensitivity(compare_table(SENSITIVITY))
    assert single["verdict"] == "" and single["difference"] == pytest.approx(0.02) and "one seed" in single["text"]
    assert relu_sensitivity(compare_table(SENSITIVITY[SENSITIVITY["number"] != 2].iloc[1:])) is None
