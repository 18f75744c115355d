"""Pareto fronts and 2-D hypervolume over trial tables (pure numpy / pandas; no Optuna)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

DIRECTIONS = ("maximize", "minimize")


def _as_minimization(values: np.ndarray, directions: list[str]) -> np.ndarray:
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return np.asarray(values, dtype=float) * signs


def pareto_mask(values: np.ndarray, directions: list[str], slack: np.ndarray | list[float] | None = None) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` (n × k) under per-column ``directions``.

    A row is dominated when another row is at least as good in every column and better in one. Duplicate
    rows are all kept (neither dominates the other). With ``slack`` (one non-negative number per column, in
    that column's units), a row is kept when it would be non-dominated after improving by its slack: the
    front plus an ε-band around it.
    """
    for d in directions:
        if d not in DIRECTIONS:
            raise ValueError(f"direction must be maximize or minimize, got {d!r}")
    v = _as_minimization(values, directions)
    shifted = v - (np.zeros(v.shape[1]) if slack is None else np.asarray(slack, dtype=float))
    mask = np.ones(len(v), dtype=bool)
    for i in range(len(v)):
        dominated = np.all(v <= shifted[i], axis=1) & np.any(v < shifted[i], axis=1)
        mask[i] = not dominated.any()
    return mask


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, str]) -> pd.DataFrame:
    """The non-dominated rows of ``df`` for ``objectives`` (column → direction), sorted by the first
    objective's column ascending. Rows with a missing objective are never on the front."""
    cols = list(objectives)
    ok = df.dropna(subset=cols)
    if ok.empty:
        return ok
    mask = pareto_mask(ok[cols].to_numpy(), [objectives[c] for c in cols])
    return ok[mask].sort_values(cols[0])


def hypervolume_2d(points: np.ndarray, reference: tuple[float, float], directions: list[str]) -> float:
    """Area dominated by ``points`` (n × 2) and bounded by ``reference`` (a point worse than all on both axes).

    Units are the product of the two objectives' units (e.g. accuracy × ReLUs). Points that do not improve
    on the reference in both coordinates contribute nothing.
    """
    if len(points) == 0:
        return 0.0
    v = _as_minimization(np.asarray(points, dtype=float).reshape(-1, 2), directions)
    ref = _as_minimization(np.asarray(reference, dtype=float).reshape(1, 2), directions)[0]
    v = v[np.all(v < ref, axis=1)]
    if len(v) == 0:
        return 0.0
    v = v[pareto_mask(v, ["minimize", "minimize"])]
    v = v[np.argsort(v[:, 0])]
    area, prev_y = 0.0, ref[1]
    for x, y in v:
        if y < prev_y:
            area += (ref[0] - x) * (prev_y - y)
            prev_y = y
    return float(area)


def attainment_area(relus: np.ndarray, accuracy: np.ndarray, low: float, high: float, floor: float) -> float:
    """Area between the attainment curve of points (``relus``, ``accuracy``) and ``floor`` over ReLU counts in
    [``low``, ``high``], on a log10 axis: ∫ max(0, a(r) − floor) d log10 r, where a(r) is the best accuracy of a
    point with at most r ReLUs (units: accuracy × decades of ReLUs). Counts below 1 are taken as 1."""
    lo, hi = math.log10(max(low, 1.0)), math.log10(max(high, 1.0))
    order = np.argsort(relus, kind="stable")
    x = np.log10(np.maximum(np.asarray(relus, float)[order], 1.0))
    best = np.maximum.accumulate(np.asarray(accuracy, float)[order]) if len(order) else np.array([])
    area = 0.0
    for i in range(len(x)):
        start, end = max(x[i], lo), min(x[i + 1] if i + 1 < len(x) else hi, hi)
        if end > start:
            area += (end - start) * max(0.0, best[i] - floor)
    return float(area)


def shared_hypervolume(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Hypervolumes of two point sets (columns ``relus``, ``accuracy``) over the ReLU range both cover, so a
    corner only one can reach does not decide the comparison: :func:`attainment_area` of each over [low, high] =
    [larger of the two smallest counts, smaller of the two largest], above ``floor`` = the lowest accuracy of any
    point of either set in that range. ``ratio`` = a / b (NaN when the sets share no range)."""
    if a.empty or b.empty:
        return {"low": math.nan, "high": math.nan, "floor": math.nan, "a": math.nan, "b": math.nan, "ratio": math.nan}
    low, high = float(max(a["relus"].min(), b["relus"].min())), float(min(a["relus"].max(), b["relus"].max()))
    inside = pd.concat([s[(s["relus"] >= low) & (s["relus"] <= high)] for s in (a, b)])
    if low >= high or inside.empty:
        return {"low": low, "high": high, "floor": math.nan, "a": math.nan, "b": math.nan, "ratio": math.nan}
    floor = float(inside["accuracy"].min())
    area = [attainment_area(s["relus"].to_numpy(float), s["accuracy"].to_numpy(float), low, high, floor)
            for s in (a, b)]
    return {"low": low, "high": high, "floor": floor, "a": area[0], "b": area[1],
            "ratio": area[0] / area[1] if area[1] > 0 else math.nan}
