"""Searched front vs DeepReShape's rule points, and the paper's insight views, from a trials table (pure pandas).

The trials table is ``runs/<study>/trials.csv``: one row per trial and fidelity level with at least
``number``, ``state`` (``COMPLETE`` | ``FAIL`` | …), ``source`` (``search`` | ``rule`` | ``net`` | a method name),
``accuracy`` (validation, 0–1), ``relus`` (scalar ReLUs per image, in the spec's own convention), ``level``
(fidelity level; missing means 0) and ``spec`` (canonical JSON); ``label``, ``budget`` (rule rows: the budget
the rule built the spec for) and ``train_seconds`` are used when present. A trial is *measured* when it is
COMPLETE with an accuracy and a ReLU count (and not marked ``feasible == False``).

Fairness: accuracies are only compared at one fidelity level. For a rule point that level is the highest one at
which both the rule point and at least one searched trial were measured (normally the lowest level, where
every trial runs, unless both were promoted). The insight views use each candidate's highest level; a
candidate is a ``(source, budget, spec)`` triple, so the same spec re-measured at a higher level (under the
same or a new trial number) counts once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import pandas as pd

from pisearch.cost import Cost, count
from pisearch.errors import UserError
from pisearch.report.pareto import hypervolume_2d, pareto_front
from pisearch.spec import ArchSpec

REQUIRED = ("number", "state", "source", "accuracy", "relus", "spec")
OPTIONAL = ("label", "budget", "level", "train_seconds")
CANDIDATE = ["source", "budget", "spec"]
FRONT_OBJECTIVES = {"relus": "minimize", "accuracy": "maximize"}
HV_AXES = ["maximize", "minimize"]  # accuracy, log10(ReLUs): the hypervolume axes
COMPARE_COLUMNS = [
    "budget", "rule_number", "rule_label", "rule_relus", "rule_accuracy", "level", "n_search",
    "search_best_number", "search_best_label", "search_best_relus", "search_best_accuracy", "search_minus_rule",
    "search_relus_at_iso_accuracy", "relu_saving_at_iso_accuracy", "rule_train_seconds", "search_train_seconds",
]


def trials_table(trials: pd.DataFrame, required: Iterable[str] = REQUIRED) -> pd.DataFrame:
    """A copy of a trials table (trials.csv) with its columns checked and typed (level int, numbers numeric)."""
    missing = [c for c in required if c not in trials.columns]
    if missing:
        raise UserError(f"trials table: missing column(s) {', '.join(missing)} (needed: {', '.join(required)})")
    df = trials.copy()
    for col in OPTIONAL:
        if col not in df:
            df[col] = np.nan
    df["level"] = pd.to_numeric(df["level"], errors="coerce").fillna(0).astype(int)
    for col in ("accuracy", "relus", "budget", "train_seconds"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def measured(df: pd.DataFrame) -> pd.DataFrame:
    """COMPLETE, feasible rows that carry an accuracy and a ReLU count."""
    ok = (df["state"] == "COMPLETE") & df["accuracy"].notna() & df["relus"].notna()
    if "feasible" in df:
        ok &= df["feasible"].astype(str).str.lower() != "false"
    return df[ok]


def highest_level(df: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: its highest-level measurement (latest trial number on ties)."""
    return df.sort_values(["level", "number"]).groupby(CANDIDATE, dropna=False, sort=False).tail(1)


def log_relus(relus) -> np.ndarray:
    """log10 of ReLU counts, counts below 1 taken as 1: the log axis of fronts and hypervolumes."""
    return np.log10(np.maximum(np.asarray(relus, float), 1.0))


def relus_to_reach(points: pd.DataFrame, accuracy: float) -> float:
    """ReLUs the Pareto front of ``points`` (columns ``relus``, ``accuracy``) needs to reach ``accuracy``.

    Linear interpolation in log10(ReLUs) between consecutive front points; an accuracy at or below the
    front's first point costs that point's ReLUs (no extrapolation below it, so a saving derived from it is a
    lower bound); NaN when no front point reaches ``accuracy``. A front point with 0 ReLUs counts as 1 ReLU
    (log scale; a saving derived from it is then rule_relus / 1, finite).
    """
    front = pareto_front(points[["relus", "accuracy"]], FRONT_OBJECTIVES).drop_duplicates()
    if front.empty or accuracy > front["accuracy"].max():
        return math.nan
    r = log_relus(front["relus"])
    a = front["accuracy"].to_numpy(float)  # strictly increasing along the front
    i = int(np.searchsorted(a, accuracy))
    if i == 0:
        return float(10 ** r[0])
    t = (accuracy - a[i - 1]) / (a[i] - a[i - 1])
    return float(10 ** (r[i - 1] + t * (r[i] - r[i - 1])))


def _compare_row(rule: pd.DataFrame, search: pd.DataFrame, rule_seconds: float, search_seconds: float) -> dict:
    common = set(rule["level"]) & set(search["level"])
    level = max(common) if common else int(rule["level"].max())
    point = rule[rule["level"] == level].sort_values("number").iloc[-1]
    pool = search[search["level"] == level]
    below = pool[pool["relus"] <= point["relus"]]
    best = below.loc[below["accuracy"].idxmax()] if len(below) else pd.Series(dtype=object)
    needed = relus_to_reach(pool, point["accuracy"])
    return {
        "budget": point["budget"], "rule_number": point["number"], "rule_label": point["label"],
        "rule_relus": point["relus"], "rule_accuracy": point["accuracy"], "level": level, "n_search": len(pool),
        "search_best_number": best.get("number", math.nan), "search_best_label": best.get("label", math.nan),
        "search_best_relus": best.get("relus", math.nan), "search_best_accuracy": best.get("accuracy", math.nan),
        "search_minus_rule": best.get("accuracy", math.nan) - point["accuracy"],
        "search_relus_at_iso_accuracy": needed, "relu_saving_at_iso_accuracy": point["relus"] / needed,
        "rule_train_seconds": rule_seconds, "search_train_seconds": search_seconds,
    }


def compare_table(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per rule point (``source == "rule"``; one per budget), sorted by budget.

    At the fidelity ``level`` chosen as in the module docstring: ``search_best_*`` is the most accurate
    searched trial with ``relus ≤ rule_relus`` (NaN if none), ``search_minus_rule`` its accuracy minus the
    rule's (accuracy units, 0–1), ``relu_saving_at_iso_accuracy`` = rule_relus / :func:`relus_to_reach` on
    the searched front (how many times fewer ReLUs the search needs for the rule's accuracy; NaN if the front
    never reaches it). ``rule_train_seconds`` sums every row of that rule point, ``search_train_seconds``
    every searched row of any state and level (the search's whole training cost).
    """
    df = trials_table(trials)
    search = measured(df[df["source"] == "search"])
    search_seconds = float(df.loc[df["source"] == "search", "train_seconds"].sum())
    rows = []
    for _, group in df[df["source"] == "rule"].groupby(["budget", "spec"], dropna=False):
        rule = measured(group)
        if len(rule):
            rows.append(_compare_row(rule, search, float(group["train_seconds"].sum()), search_seconds))
    out = pd.DataFrame(rows, columns=COMPARE_COLUMNS)
    return out.sort_values(["budget", "rule_relus"], kind="stable").reset_index(drop=True)


def hypervolume_vs_rule(trials: pd.DataFrame, level: int | None = None) -> dict:
    """Hypervolume of the searched front and of the rule points under one reference point, at one level.

    Axes: accuracy (maximize) and log10(ReLUs) (minimize; counts below 1 are taken as 1); reference point:
    accuracy 0 and ten times the largest ReLU count of either set, so the value is in accuracy × decades of
    ReLUs and a set that is better everywhere has the larger value. ``level`` defaults to the lowest level,
    where every trial is measured. ``ratio`` = search / rule.
    """
    m = measured(trials_table(trials))
    if level is None:
        level = int(m["level"].min()) if len(m) else 0
    m = m[m["level"] == level]
    sets = {name: m[m["source"] == name] for name in ("search", "rule")}
    top = max(float(m["relus"].max()) if len(m) else 1.0, 1.0)
    reference = (0.0, math.log10(10 * top))

    def hv(points: pd.DataFrame) -> float:
        xy = np.column_stack([points["accuracy"], log_relus(points["relus"])])
        return hypervolume_2d(xy, reference, HV_AXES)

    search_hv, rule_hv = hv(sets["search"]), hv(sets["rule"])
    return {"level": level, "reference_accuracy": reference[0], "reference_relus": 10 * top,
            "search_hypervolume": search_hv, "rule_hypervolume": rule_hv,
            "ratio": search_hv / rule_hv if rule_hv > 0 else math.nan,
            "n_search": len(sets["search"]), "n_rule": len(sets["rule"])}


@lru_cache(maxsize=4096)
def _spec_cost(spec_json: str) -> tuple[ArchSpec, Cost]:
    spec = ArchSpec.from_json(spec_json, source="trials table spec")
    return spec, count(spec)


def _ratio_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}"


def accuracy_by_width(trials: pd.DataFrame) -> pd.DataFrame:
    """Accuracy vs ReLUs with each candidate's width profile (measured candidates at their highest level).

    ``profile`` is the stage-to-stage width ratios read from the spec (DeepReShape's α,β,γ, e.g. ``5,5,3``;
    ResNet18 is ``2,2,2``), ``base_width`` the first stage's width m, ``widths`` all stage widths. Sorted by
    profile, then ReLUs, so grouping by ``profile`` gives one curve per width multiplier profile.
    """
    rows = []
    for _, t in highest_level(measured(trials_table(trials))).iterrows():
        widths = [st.width for st in _spec_cost(t["spec"])[0].stages]
        rows.append({"number": t["number"], "source": t["source"], "label": t["label"], "level": t["level"],
                     "profile": ",".join(_ratio_text(b / a) for a, b in zip(widths, widths[1:])),
                     "base_width": widths[0], "widths": "-".join(map(str, widths)), "relus": t["relus"],
                     "accuracy": t["accuracy"]})
    cols = ["number", "source", "label", "level", "profile", "base_width", "widths", "relus", "accuracy"]
    return pd.DataFrame(rows, columns=cols).sort_values(["profile", "relus"], kind="stable").reset_index(drop=True)


def stage_relu_share(trials: pd.DataFrame) -> pd.DataFrame:
    """Each measured candidate's ReLU share per stage (``stem``, ``stage1`` …, ``head``: fractions of its
    exact ReLU count that sum to 1; NaN for a network without ReLUs), at its highest level, with accuracy."""
    rows = []
    for _, t in highest_level(measured(trials_table(trials))).iterrows():
        cost = _spec_cost(t["spec"])[1]
        shares = {k: (v / cost.relus if cost.relus else math.nan) for k, v in cost.stage_relus().items()}
        rows.append({"number": t["number"], "source": t["source"], "label": t["label"], "level": t["level"],
                     "accuracy": t["accuracy"], "relus": cost.relus, **shares})
    if not rows:
        return pd.DataFrame(columns=["number", "source", "label", "level", "accuracy", "relus"])
    out = pd.DataFrame(rows)
    stages = [c for c in out.columns if c in ("stem", "head") or c.startswith("stage")]
    out.loc[out["relus"] > 0, stages] = out.loc[out["relus"] > 0, stages].fillna(0.0)  # stages a net lacks
    return out
