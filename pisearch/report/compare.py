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
from pisearch.report.pareto import hypervolume_2d, pareto_front, shared_hypervolume
from pisearch.report.verdict import paired
from pisearch.spec import ArchSpec

REQUIRED = ("number", "state", "source", "accuracy", "relus", "spec")
OPTIONAL = ("label", "budget", "level", "train_seconds", "latency_ms")
CANDIDATE = ["source", "budget", "spec"]
SEARCHED = ("search", "seed")  # the search's side: sampled trials and the designs it was seeded with
FRONT_OBJECTIVES = {"relus": "minimize", "accuracy": "maximize"}
HV_AXES = ["maximize", "minimize"]  # accuracy, log10(ReLUs): the hypervolume axes
COMPUTE_MULTIPLES = (1, 5, 20)  # the search's best at k × the rule's training seconds
_SIDE = ["number", "source", "label", "relus", "latency_ms", "accuracy"]
COMPARE_COLUMNS = [
    "budget", "rule_number", "rule_label", "rule_relus", "rule_latency_ms", "rule_accuracy", "level", "n_search",
    *[f"search_best_{c}" for c in _SIDE], "search_minus_rule",
    "train_seeds", "rule_accuracy_mean", "rule_accuracy_std", "search_accuracy_mean", "search_accuracy_std",
    "difference_mean", "difference_low", "difference_high", "verdict",
    *[f"latency_best_{c}" for c in _SIDE], "latency_accuracy_mean", "latency_accuracy_std", "latency_difference_mean",
    "latency_difference_low", "latency_difference_high", "verdict_latency",
    "search_relus_at_iso_accuracy", "relu_saving_at_iso_accuracy", "rule_train_seconds", "search_train_seconds",
    "compute_ratio", *[f"search_best_accuracy_at_{k}x" for k in COMPUTE_MULTIPLES],
]
SEED_RUN_COLUMNS = ["parent", "level", "train_seed", "state", "accuracy", "train_seconds"]


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
    for col in ("accuracy", "relus", "budget", "train_seconds", "latency_ms"):
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


def _best(pool: pd.DataFrame, prefix: str) -> dict:
    """The most accurate row of ``pool`` as ``{prefix}{number, source, label, relus, latency_ms, accuracy}``."""
    best = pool.loc[pool["accuracy"].idxmax()] if len(pool) else pd.Series(dtype=object)
    return {f"{prefix}{c}": best.get(c, math.nan) for c in _SIDE}


def _seed_accuracies(runs: pd.DataFrame, number: float, level: int) -> dict[int, float]:
    """Accuracy by training seed of the completed seed runs of level-0 trial ``number`` at ``level``."""
    if runs is None or not len(runs) or pd.isna(number):
        return {}
    mine = runs[(runs["parent"] == number) & (runs["level"] == level) & (runs["state"] == "COMPLETE")]
    return {int(s): float(a) for s, a in zip(mine["train_seed"], mine["accuracy"]) if pd.notna(a)}


def _verdict(rule: dict[int, float], side: dict[int, float], prefix: str) -> dict:
    p = paired(side, rule)
    return {f"{prefix}accuracy_mean": p.a_mean, f"{prefix}accuracy_std": p.a_std,
            f"{prefix}difference_mean": p.difference, f"{prefix}difference_low": p.low,
            f"{prefix}difference_high": p.high}, p


def _at_compute(search: pd.DataFrame, seconds: float, relus: float) -> dict:
    """The most accurate searched point with ≤ ``relus`` among the trials (in trial order) that the search had
    trained by the time it spent k × ``seconds`` of training, for each k of :data:`COMPUTE_MULTIPLES`."""
    level0 = search[search["level"] == 0].sort_values("number")
    spent = level0["train_seconds"].fillna(0).cumsum()
    out = {}
    for k in COMPUTE_MULTIPLES:
        done = level0[(spent <= k * seconds) & (level0["relus"] <= relus)]
        out[f"search_best_accuracy_at_{k}x"] = done["accuracy"].max() if len(done) else math.nan
    return out


def _compare_row(rule: pd.DataFrame, search: pd.DataFrame, runs: pd.DataFrame | None, seconds: dict) -> dict:
    common = set(rule["level"]) & set(search["level"])
    level = max(common) if common else int(rule["level"].max())
    point = rule[rule["level"] == level].sort_values("number").iloc[-1]
    pool = search[search["level"] == level]
    needed = relus_to_reach(pool, point["accuracy"])
    row = {
        "budget": point["budget"], "rule_number": point["number"], "rule_label": point["label"],
        "rule_relus": point["relus"], "rule_latency_ms": point["latency_ms"], "rule_accuracy": point["accuracy"],
        "level": level, "n_search": len(pool),
        **_best(pool[pool["relus"] <= point["relus"]], "search_best_"),
        **_best(pool[pool["latency_ms"] <= point["latency_ms"]], "latency_best_"),
        "search_relus_at_iso_accuracy": needed, "relu_saving_at_iso_accuracy": point["relus"] / needed,
        "rule_train_seconds": seconds["rule_point"], "search_train_seconds": seconds["search"],
        "compute_ratio": seconds["search"] / seconds["rule"] if seconds["rule"] else math.nan,
        **_at_compute(search, seconds["rule"], point["relus"]),
    }
    row["search_minus_rule"] = row["search_best_accuracy"] - point["accuracy"]
    rule_seeds = _seed_accuracies(runs, point["number"], level)
    found, p = _verdict(rule_seeds, _seed_accuracies(runs, row["search_best_number"], level), "search_")
    row |= {k.replace("search_difference", "difference"): v for k, v in found.items()}
    row |= {"verdict": p.verdict, "train_seeds": ",".join(map(str, p.seeds)),
            "rule_accuracy_mean": p.b_mean, "rule_accuracy_std": p.b_std}
    found, p = _verdict(rule_seeds, _seed_accuracies(runs, row["latency_best_number"], level), "latency_")
    return row | found | {"verdict_latency": p.verdict}


def compare_table(trials: pd.DataFrame, seed_runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per rule point (``source == "rule"``; one per budget), sorted by budget.

    At the fidelity ``level`` chosen as in the module docstring: ``search_best_*`` is the most accurate
    searched trial (``source`` search or seed) with ``relus ≤ rule_relus`` (NaN if none), ``latency_best_*`` the
    most accurate with ``latency_ms ≤ rule_latency_ms`` (the study's protocol estimate: polynomials and linear
    layers priced), ``search_minus_rule`` the first one's accuracy minus the rule's (accuracy units, 0–1),
    ``relu_saving_at_iso_accuracy`` = rule_relus / :func:`relus_to_reach` on the searched front (NaN if the
    front never reaches the rule's accuracy).

    With ``seed_runs`` (columns :data:`SEED_RUN_COLUMNS`: re-trainings of level-0 trial ``parent`` at ``level``
    with ``train_seed``): per side the mean and standard deviation over the seeds both sides have, the mean
    paired difference with its 95 % interval and the verdict (:mod:`pisearch.report.verdict`), by ReLUs and by
    latency. Compute: ``rule_train_seconds`` is this rule point's training, ``search_train_seconds`` every
    searched row's (any state and level), ``compute_ratio`` the latter over the training of all rule points,
    ``search_best_accuracy_at_kx`` the search's best with ≤ rule_relus once it had spent k × the rule's seconds.
    """
    df = trials_table(trials)
    searched = df["source"].isin(SEARCHED)
    search = measured(df[searched])
    rules = df[df["source"] == "rule"]
    seconds = {"search": float(df.loc[searched, "train_seconds"].sum()), "rule": float(rules["train_seconds"].sum())}
    rows = []
    for _, group in rules.groupby(["budget", "spec"], dropna=False):
        rule = measured(group)
        if len(rule):
            rows.append(_compare_row(rule, search, seed_runs, {**seconds, "rule_point": float(group["train_seconds"].sum())}))
    out = pd.DataFrame(rows, columns=COMPARE_COLUMNS)
    return out.sort_values(["budget", "rule_relus"], kind="stable").reset_index(drop=True)


def relu_sensitivity(table: pd.DataFrame, seed_runs: pd.DataFrame | None = None) -> dict | None:
    """Does the fidelity reward ReLUs at all? The rule point of :func:`compare_table`'s ``table`` with the most
    ReLUs against the one with the fewest (at 16² the rule's designs differ only in how many stages they cull, so
    this is the accuracy its extra ReLUs buy), paired over the seed runs both have: ``difference`` (accuracy
    units, most − fewest), its 95 % ``low``/``high``, ``verdict`` and a one-line ``text`` that starts with
    ``warning:`` when the fidelity cannot show the extra ReLUs' worth (a tie or a loss: then a ``tie`` in
    compare.csv means "not separable at this fidelity", not "equal"). Without seed runs: the single-seed difference,
    no verdict. None when the table has fewer than two rule points with different ReLU counts."""
    rows = table.dropna(subset=["rule_accuracy"])
    if rows["rule_relus"].nunique() < 2:
        return None
    most, fewest = rows.loc[rows["rule_relus"].idxmax()], rows.loc[rows["rule_relus"].idxmin()]
    p = paired(_seed_accuracies(seed_runs, most["rule_number"], int(most["level"])),
               _seed_accuracies(seed_runs, fewest["rule_number"], int(fewest["level"])))
    points = f"the rule's {most['rule_relus']:,.0f}-ReLU point vs its {fewest['rule_relus']:,.0f}-ReLU point"
    out = {"most_relus": float(most["rule_relus"]), "fewest_relus": float(fewest["rule_relus"]),
           "seeds": len(p.seeds), "difference": p.difference, "low": p.low, "high": p.high, "verdict": p.verdict}
    if not p.verdict:
        out["difference"] = float(most["rule_accuracy"] - fewest["rule_accuracy"])
        out["text"] = f"{points}: {out['difference']:+.4f} on one seed (compare: seeds gives it an interval)"
        return out
    measured_as = f"{p.difference:+.4f} (95 % {p.low:+.4f} … {p.high:+.4f}, {len(p.seeds)} seeds)"
    if p.verdict == "win":
        out["text"] = f"the fidelity separates the rule's budgets: {points}: {measured_as}"
    else:
        out["text"] = (f"warning: {points}: {measured_as}: at this fidelity the rule's extra ReLUs buy no "
                       "accuracy it can measure, so a tie in compare.csv means 'not separable here', not 'equal'; "
                       "lengthen the proxy (fidelity: epochs, train_subset) before reading the verdicts")
    return out


def bin_table(trials: pd.DataFrame, bins: list[tuple[int, int]]) -> pd.DataFrame:
    """Searched trials per ReLU bin (``budget.bins``): how many were sampled into it (level 0, any state, by their
    ReLU count), how many were measured, and the best accuracy there (each candidate at its highest level)."""
    df = trials_table(trials)
    searched = df[df["source"].isin(SEARCHED) & (df["level"] == 0)]
    best = highest_level(measured(df[df["source"].isin(SEARCHED)]))
    rows = []
    for i, (low, high) in enumerate(bins):
        inside = searched["relus"].between(low, high)
        rows.append({"bin": i, "relus_low": low, "relus_high": high, "trials": int(inside.sum()),
                     "measured": int(measured(searched[inside]).shape[0]),
                     "best_accuracy": best.loc[best["relus"].between(low, high), "accuracy"].max()})
    return pd.DataFrame(rows, columns=["bin", "relus_low", "relus_high", "trials", "measured", "best_accuracy"])


def seed_contenders(trials: pd.DataFrame) -> pd.DataFrame:
    """What the ``compare: seeds`` stage re-trains: every rule point at its comparison level and, at that level,
    the searched contenders :func:`compare_table` reads (by ReLUs and by latency) and the searched Pareto front
    within the rule points' ReLU range. One row per (trial number, level) with the trial's ``source``, ``label``,
    ``budget`` and ``spec``."""
    table = compare_table(trials)
    df = trials_table(trials)
    wanted = set()
    for _, row in table.iterrows():
        for number in (row["rule_number"], row["search_best_number"], row["latency_best_number"]):
            if pd.notna(number):
                wanted.add((int(number), int(row["level"])))
        pool = measured(df[df["source"].isin(SEARCHED) & (df["level"] == row["level"])])
        front = pareto_front(pool, FRONT_OBJECTIVES)
        front = front[front["relus"].between(table["rule_relus"].min(), table["rule_relus"].max())]
        wanted |= {(int(n), int(row["level"])) for n in front["number"]}
    rows = df[[(int(n), int(lv)) in wanted for n, lv in zip(df["number"], df["level"])]]
    return rows.drop_duplicates(["number", "level"])[["number", "level", "source", "label", "budget", "spec"]]


def hypervolume_vs_rule(trials: pd.DataFrame, level: int | None = None) -> dict:
    """Hypervolume of the searched front (search and seed trials) and of the rule points, at one level.

    Full: axes accuracy (maximize) and log10(ReLUs) (minimize; counts below 1 are taken as 1), reference point
    accuracy 0 and ten times the largest ReLU count of either set (accuracy × decades of ReLUs; a set better
    everywhere has the larger value); ``ratio`` = search / rule. Shared (``shared_*``): the same over only the ReLU
    range both sets cover, above the lowest accuracy there (:func:`~pisearch.report.pareto.shared_hypervolume`),
    so a corner the rule cannot reach does not decide it. ``level`` defaults to the lowest level, where every
    trial is measured.
    """
    m = measured(trials_table(trials))
    if level is None:
        level = int(m["level"].min()) if len(m) else 0
    m = m[m["level"] == level]
    sets = {"search": m[m["source"].isin(SEARCHED)], "rule": m[m["source"] == "rule"]}
    top = max(float(m["relus"].max()) if len(m) else 1.0, 1.0)
    reference = (0.0, math.log10(10 * top))

    def hv(points: pd.DataFrame) -> float:
        xy = np.column_stack([points["accuracy"], log_relus(points["relus"])])
        return hypervolume_2d(xy, reference, HV_AXES)

    search_hv, rule_hv = hv(sets["search"]), hv(sets["rule"])
    shared = shared_hypervolume(sets["search"], sets["rule"])
    return {"level": level, "reference_accuracy": reference[0], "reference_relus": 10 * top,
            "search_hypervolume": search_hv, "rule_hypervolume": rule_hv,
            "ratio": search_hv / rule_hv if rule_hv > 0 else math.nan,
            "shared_relus_low": shared["low"], "shared_relus_high": shared["high"],
            "shared_floor_accuracy": shared["floor"], "shared_search_hypervolume": shared["a"],
            "shared_rule_hypervolume": shared["b"], "shared_ratio": shared["ratio"],
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
