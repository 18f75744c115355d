"""Verdicts with error bars: a searched network against a rule point, both re-trained with the same seeds.

Each seed trains both networks once (same data order and augmentation draws); the verdict reads the paired
differences d_s = search_s − rule_s (accuracy, 0–1): ``win`` when the two-sided 95 % Student-t interval of their
mean lies above 0, ``loss`` when it lies below, ``tie`` when it covers 0 (identical seed sets are always a tie),
and empty when fewer than 2 seeds were measured on both sides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Paired:
    """Seed-paired comparison of two networks: per-side mean and sample standard deviation over their seeds, and
    the mean paired difference with its ``CONFIDENCE`` interval (accuracy units, 0–1)."""

    seeds: tuple[int, ...]
    a_mean: float
    a_std: float
    b_mean: float
    b_std: float
    difference: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        """``win`` (a better), ``loss`` (a worse), ``tie`` or ``""`` (not measured)."""
        if math.isnan(self.low):
            return ""
        return "win" if self.low > 0 else "loss" if self.high < 0 else "tie"


def _spread(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> Paired:
    """Compare accuracies ``a`` and ``b`` (seed → accuracy) over the seeds both have."""
    seeds = tuple(sorted(set(a) & set(b)))
    d = np.array([a[s] - b[s] for s in seeds], dtype=float)
    if len(d) < 2:
        mean, low, high = (float(d.mean()) if len(d) else math.nan), math.nan, math.nan
    else:
        from scipy import stats  # here, not at import: scipy.stats takes 2.5 s to import and every CLI command
                                 # imports this module

        mean = float(d.mean())
        half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
        low, high = mean - half, mean + half
    return Paired(seeds, *_spread([a[s] for s in seeds]), *_spread([b[s] for s in seeds]), mean, low, high)
