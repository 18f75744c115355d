import math

import numpy as np
import pandas as pd
import pytest

from pisearch.report import agreement_of, kendall_tau_b, level_agreements, rank_agreement, spearman_rho, spread_numbers


def test_identical_ranking_is_one_and_reversed_is_minus_one():
    x = [0.1, 0.5, 0.3, 0.9, 0.7, 0.2]
    assert kendall_tau_b(x, x) == pytest.approx(1.0) and spearman_rho(x, x) == pytest.approx(1.0)
    y = [-v for v in x]
    assert kendall_tau_b(x, y) == pytest.approx(-1.0) and spearman_rho(x, y) == pytest.approx(-1.0)
    # a monotone transform keeps the ranking
    assert kendall_tau_b(x, np.exp(np.array(x) * 10)) == pytest.approx(1.0)


def test_known_values_with_ties():
    # 1 discordant pair of 6 (n = 4): τ = (5 − 1) / 6
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # ties: x has one tied pair, y none → τ-b = (C − D) / √(5 · 6) with C = 5, D = 0
    assert kendall_tau_b([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3])) and math.isnan(spearman_rho([0.5], [0.5]))


def test_matches_scipy_on_random_arrays_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.integers(0, 6, 15).astype(float), rng.integers(0, 6, 15).astype(float)
        assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)
        assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_warnings_for_low_tau_or_few_candidates():
    good = rank_agreement(np.arange(8), np.arange(8) + 1)
    assert good["warning"] is None and good["n"] == 8 and good["tau"] == 1.0
    assert good["text"] == "level 0 agrees with level 1 at τ = 1.00 (ρ = 1.00) over 8 candidates"
    few = rank_agreement([1, 2, 3], [1, 2, 3])
    assert "only 3 candidates measured at both (fewer than 6)" in few["warning"]
    bad = rank_agreement(np.arange(8), [3, 7, 0, 5, 1, 6, 2, 4], "level 0", "level 1")
    assert bad["tau"] < 0.5 and "< 0.5: level 0 ranks candidates unlike level 1" in bad["warning"]
    assert "warning:" in bad["text"]
    with pytest.raises(ValueError, match="aligned"):
        rank_agreement([1, 2], [1, 2, 3])


def test_levels_are_paired_by_level0_number():
    trials = pd.DataFrame({
        "number": [0, 1, 2, 3, 0, 2, 3, 3], "level": [0, 0, 0, 0, 1, 1, 1, 2],
        "state": ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE"],
        "accuracy": [0.5, 0.6, None, 0.7, 0.8, 0.1, 0.9, 0.95],
    })
    first, second = level_agreements(trials)
    assert first["pairs"] == [[0, 0.5, 0.8], [3, 0.7, 0.9]] and first["tau"] == 1.0  # trial 2 failed at level 0
    assert (first["lower"], first["higher"], first["kind"]) == ("level 0", "level 1", "promotion")
    assert second["pairs"] == [[3, 0.9, 0.95]] and second["tau"] is None and "n/a" in second["text"]
    assert agreement_of(trials.iloc[:0], trials, "a", "b")["n"] == 0


def test_spread_covers_the_accuracy_range_one_per_spec():
    rows = pd.DataFrame({"number": range(10), "accuracy": [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.5],
                         "spec_hash": list("abcdefghic")})  # trial 9 is trial 2's spec again
    assert spread_numbers(rows, 3) == [1, 2, 0]  # lowest, median, highest
    assert sorted(spread_numbers(rows, 20)) == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert len(spread_numbers(rows, 5)) == 5
