"""The reports of a run folder (``trials.csv``, ``pareto.csv``, ``compare.csv``, ``hypervolume.json``): always
regenerable from the storage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pandas as pd

from pisearch.report import (
    compare_table, highest_level, hypervolume_vs_rule, linearized_table, measured, pareto_front, proxy_trained,
    trials_table,
)
from pisearch.study.config import OBJECTIVES
from pisearch.study.store import Store


def state_summary(df: pd.DataFrame) -> str:
    """Trial states per fidelity level of a trials table, e.g. ``5 complete, 1 pruned; level 1: 2 complete``."""
    parts = []
    for level, rows in df.groupby(pd.to_numeric(df["level"], errors="coerce").fillna(0).astype(int)):
        states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(rows["state"].value_counts().items()))
        parts.append(states if level == 0 else f"level {level}: {states}")
    return "; ".join(parts)


def front_of(df: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """Non-dominated measured candidates for ``objectives``, each at its highest fidelity level: proxy-trained
    ones only (searched, seeds, rule points, named nets); linearized trials had more training than their level
    and are reported as their own series (``linearized.csv``)."""
    pool = proxy_trained(highest_level(measured(trials_table(df))))
    return pareto_front(pool, {o: OBJECTIVES[o] for o in objectives})


def write_reports(store: Store, study: optuna.Study, out_dir: str | Path, objectives: list[str]) -> pd.DataFrame:
    """Write ``trials.csv`` (one row per trial and fidelity level), ``pareto.csv`` (the proxy-trained front),
    ``linearized.csv`` (linearized trials with their training beside their parent's) when there are any, and, when
    the study has
    DeepReShape rule points, ``compare.csv``, ``hypervolume.json`` and (with ``compare: seeds``) ``seeds.csv``, one
    row per seed re-training, into ``out_dir`` (each atomically: temp file + rename); returns the trials table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = store.trials(study)
    _write_csv(df, out_dir / "trials.csv")
    _write_csv(front_of(df, objectives), out_dir / "pareto.csv")
    linearized = linearized_table(df)
    if len(linearized):
        _write_csv(linearized, out_dir / "linearized.csv")
    if (df["source"] == "rule").any():
        runs = store.seed_runs(study.study_name)
        if len(runs):
            _write_csv(runs, out_dir / "seeds.csv")
        _write_csv(compare_table(df, runs), out_dir / "compare.csv")
        write_atomic(json.dumps(hypervolume_vs_rule(df), indent=1), out_dir / "hypervolume.json")
    return df


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    write_atomic(df.to_csv(index=False), path)


def write_atomic(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: workers may share a run folder
    tmp.write_text(text)
    tmp.replace(path)
