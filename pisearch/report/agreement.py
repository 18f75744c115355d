"""Rank agreement between two fidelities (pure numpy / pandas): is the cheap proxy's ranking the longer training's?

A study measures candidates at level 0 (the proxy) and re-measures some at a higher fidelity: the promoted band
(``fidelities:``) or a spread of candidates (``fidelity_check:``). Kendall's τ-b and Spearman's ρ between the two
accuracies of the candidates measured at both say how far the proxy's ranking carries over. A τ below
:data:`MIN_TAU`, or fewer than :data:`MIN_CANDIDATES` candidates, comes with a warning. The promoted band spans
only the front's accuracies (a narrow range, where τ is lower and noisier); a fidelity check spans the whole range.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

MIN_TAU = 0.5        # below this the proxy's front is not to be trusted
MIN_CANDIDATES = 6   # fewer pairs than this: τ says little (its sd is ≈ 0.3 at 6 pairs under no agreement)


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"rank agreement needs two aligned 1-D arrays, got shapes {x.shape} and {y.shape}")
    return x, y


def kendall_tau_b(x, y) -> float:
    """Kendall's τ-b of two aligned arrays: (concordant − discordant pairs) / √(pairs untied in x · untied in y);
    NaN with fewer than 2 values or when either array is constant."""
    x, y = _pair(x, y)
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    untied = float(np.count_nonzero(dx)) * float(np.count_nonzero(dy))
    return float((dx * dy).sum() / math.sqrt(untied)) if untied else math.nan


def average_ranks(a) -> np.ndarray:
    """1-based ranks of ``a``, ties sharing their average rank."""
    _, inverse, counts = np.unique(np.asarray(a, dtype=float), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def spearman_rho(x, y) -> float:
    """Spearman's ρ of two aligned arrays: Pearson's correlation of their average ranks; NaN as for τ."""
    x, y = _pair(x, y)
    if len(x) < 2:
        return math.nan
    rx, ry = average_ranks(x) - (len(x) + 1) / 2.0, average_ranks(y) - (len(y) + 1) / 2.0
    scale = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / scale) if scale else math.nan


def rank_agreement(lower, higher, lower_name: str = "level 0", higher_name: str = "level 1") -> dict:
    """τ-b, ρ and the number of candidates of two aligned accuracy arrays (candidate i measured at both fidelities),
    with ``warning`` (None when τ ≥ :data:`MIN_TAU` over at least :data:`MIN_CANDIDATES` candidates) and ``text``,
    e.g. ``level 0 agrees with level 1 at τ = 0.71 (ρ = 0.85) over 14 candidates``."""
    lower, higher = _pair(lower, higher)
    n, tau, rho = len(lower), kendall_tau_b(lower, higher), spearman_rho(lower, higher)
    problems = []
    if n < MIN_CANDIDATES:
        problems.append(f"only {n} candidate{'s' if n != 1 else ''} measured at both (fewer than {MIN_CANDIDATES}): "
                        "τ says little")
    if not tau >= MIN_TAU:  # NaN (too few or constant accuracies) warns too
        problems.append(f"τ {_num(tau)} < {MIN_TAU}: {lower_name} ranks candidates unlike {higher_name}, so a front "
                        f"chosen at {lower_name} is not to be trusted")
    warning = "; ".join(problems) or None
    text = f"{lower_name} agrees with {higher_name} at τ = {_num(tau)} (ρ = {_num(rho)}) over {n} candidates"
    return {"lower": lower_name, "higher": higher_name, "n": n, "tau": _round(tau), "rho": _round(rho),
            "warning": warning, "text": text + (f" — warning: {warning}" if warning else "")}


def _num(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def _measured_accuracy(rows: pd.DataFrame) -> pd.Series:
    """Accuracy by level-0 ``number`` of the COMPLETE rows (a number measured twice: its latest row)."""
    if not len(rows):
        return pd.Series(dtype=float)
    accuracy = pd.to_numeric(rows["accuracy"], errors="coerce")
    ok = rows.assign(accuracy=accuracy)[(rows["state"] == "COMPLETE") & accuracy.notna()]
    return ok.groupby(ok["number"].astype(int), sort=True)["accuracy"].last()


def paired_accuracies(lower_rows: pd.DataFrame, higher_rows: pd.DataFrame) -> pd.DataFrame:
    """Columns ``number``, ``lower``, ``higher``: the candidates (level-0 trial ``number``) measured COMPLETE in both
    tables (trials-table rows: ``number``, ``state``, ``accuracy``), sorted by number."""
    both = pd.concat({"lower": _measured_accuracy(lower_rows), "higher": _measured_accuracy(higher_rows)},
                     axis=1, join="inner")
    return both.rename_axis("number").reset_index()


def agreement_of(lower_rows: pd.DataFrame, higher_rows: pd.DataFrame, lower_name: str, higher_name: str) -> dict:
    """:func:`rank_agreement` of the candidates of two trials tables (:func:`paired_accuracies`), with ``pairs``:
    ``[number, lower accuracy, higher accuracy]`` for each (accuracies to 5 decimals)."""
    pairs = paired_accuracies(lower_rows, higher_rows)
    entry = rank_agreement(pairs["lower"], pairs["higher"], lower_name, higher_name)
    entry["pairs"] = [[int(n), round(float(a), 5), round(float(b), 5)] for n, a, b in pairs.itertuples(index=False)]
    return entry


def level_agreements(trials: pd.DataFrame) -> list[dict]:
    """One :func:`agreement_of` per promoted level k ≥ 1 of a trials table (every level; ``number`` is the level-0
    trial a row measures), level k − 1 against level k, with ``kind`` = ``promotion``."""
    level = pd.to_numeric(trials["level"], errors="coerce").fillna(0).astype(int)
    out = []
    for k in sorted(set(level[level > 0])):
        entry = agreement_of(trials[level == k - 1], trials[level == k], f"level {k - 1}", f"level {k}")
        out.append({"kind": "promotion", **entry})
    return out


def spread_numbers(rows: pd.DataFrame, n: int) -> list[int]:
    """``n`` level-0 trial numbers spread evenly over the accuracy range of ``rows`` (measured candidates with
    ``number``, ``accuracy`` and optionally ``spec_hash``; one per spec): those at evenly spaced accuracy quantiles,
    lowest and highest included; every candidate when there are no more than ``n``."""
    ok = rows.assign(accuracy=pd.to_numeric(rows["accuracy"], errors="coerce")).dropna(subset=["accuracy"])
    ok = ok.sort_values(["accuracy", "number"], kind="mergesort")
    if "spec_hash" in ok:
        ok = ok[~ok["spec_hash"].notna() | ~ok["spec_hash"].duplicated()]
    numbers = [int(v) for v in ok["number"]]
    if len(numbers) <= n:
        return numbers
    picks = np.unique(np.round(np.linspace(0, len(numbers) - 1, n)).astype(int))
    return [numbers[i] for i in picks]


def _keys_text(key: str) -> str:
    """``epochs=30, train_subset=2000`` for the check keys ``{"epochs": 30, "train_subset": 2000}`` (JSON)."""
    try:
        return ", ".join(f"{k}={v}" for k, v in json.loads(key).items())
    except (TypeError, ValueError):
        return str(key)


def rank_agreements(trials: pd.DataFrame, check_runs: pd.DataFrame | None = None,
                    check_column: str = "check_level") -> list[dict]:
    """Every rank agreement a study can report: each promoted level against the level below
    (:func:`level_agreements`), then level 0 against each fidelity check in ``check_runs`` (rows with ``number`` =
    the level-0 trial re-measured and ``check_column`` = the check's level keys as JSON; ``kind`` = ``check``)."""
    out = level_agreements(trials) if len(trials) else []
    if check_runs is None or not len(check_runs) or check_column not in check_runs:
        return out
    level = pd.to_numeric(trials["level"], errors="coerce").fillna(0).astype(int)
    runs = check_runs[check_runs[check_column].notna()]
    for key in pd.unique(runs[check_column]):
        higher = f"the fidelity check ({_keys_text(key)})"
        entry = agreement_of(trials[level == 0], runs[runs[check_column] == key], "level 0", higher)
        out.append({"kind": "check", "check_level": json.loads(key), **entry})
    return out
