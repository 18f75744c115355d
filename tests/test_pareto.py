import itertools

import numpy as np
import pandas as pd
import pytest

from pisearch.report import hypervolume_2d, pareto_front, pareto_mask


def _brute_front(v, directions):
    sign = np.array([-1 if d == "maximize" else 1 for d in directions])
    w = v * sign
    return np.array([not any((w[j] <= w[i]).all() and (w[j] < w[i]).any() for j in range(len(w))) for i in range(len(w))])


@pytest.mark.parametrize("seed", range(5))
def test_pareto_mask_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 6, size=(40, 2)).astype(float)
    dirs = ["maximize", "minimize"]
    assert (pareto_mask(v, dirs) == _brute_front(v, dirs)).all()


def test_pareto_front_sorted_and_drops_missing():
    df = pd.DataFrame({"relus": [10, 20, 30, 15, 5], "acc": [0.5, 0.7, 0.6, 0.4, np.nan]})
    front = pareto_front(df, {"relus": "minimize", "acc": "maximize"})
    assert front["relus"].tolist() == [10, 20]


def test_hypervolume_2d_matches_grid_integration():
    pts = np.array([[0.9, 300.0], [0.7, 100.0], [0.5, 50.0], [0.4, 200.0]])  # (acc max, relus min)
    ref = (0.0, 400.0)
    hv = hypervolume_2d(pts, ref, ["maximize", "minimize"])
    # brute force: count grid cells dominated by some point
    xs, ys = np.linspace(0, 1, 501)[:-1] + 0.001, np.linspace(0, 400, 801)[:-1] + 0.25
    covered = sum(any(x <= p[0] and y >= p[1] for p in pts) for x, y in itertools.product(xs, ys))
    assert hv == pytest.approx(covered * (1 / 500) * (400 / 800), rel=0.01)
    assert hv == pytest.approx(0.5 * 350 + 0.2 * 300 + 0.2 * 100)  # slices of accuracy


def test_slack_keeps_the_epsilon_band():
    # (accuracy max, relus min): b is 0.01 below a at more ReLUs, c is 0.10 below a at more ReLUs.
    v = np.array([[0.90, 100.0], [0.89, 120.0], [0.80, 130.0], [0.95, 300.0]])
    dirs = ["maximize", "minimize"]
    assert pareto_mask(v, dirs).tolist() == [True, False, False, True]
    assert pareto_mask(v, dirs, slack=[0.02, 0.0]).tolist() == [True, True, False, True]
    assert pareto_mask(v, dirs, slack=[0.2, 0.0]).all()
