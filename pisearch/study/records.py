"""Trial tables from an Optuna storage: ``trials.csv`` and ``pareto.csv`` are always regenerable from it."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd

from pisearch.report import pareto_front
from pisearch.report.compare import compare_table, hypervolume_vs_rule
from pisearch.study.config import OBJECTIVES

# Column order of trials.csv; user attrs not listed here follow, then the spec JSON last.
COLUMNS = [
    "number", "state", "source", "label", "budget", "level", "accuracy", "relus", "relus_b", "polys", "macs",
    "params", "latency_ms", "comm_mb", "feasible", "reason", "summary", "spec_hash", "train_seconds",
    "images_per_second", "retried", "fidelity", "datetime_start", "datetime_complete", "duration_s",
    "optuna_params",
]


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: state, source, metrics (see ``OBJECTIVES`` for units), spec and fidelity."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {
            "number": t.number,
            "state": t.state.name,
            "datetime_start": t.datetime_start,
            "datetime_complete": t.datetime_complete,
            "duration_s": t.duration.total_seconds() if t.duration else None,
            "optuna_params": json.dumps(t.params, sort_keys=True),
        }
        for key, value in t.user_attrs.items():
            row[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in COLUMNS + ["spec"]:
        if col not in df:
            df[col] = pd.NA
    extra = [c for c in df.columns if c not in COLUMNS and c != "spec"]
    return df[COLUMNS + extra + ["spec"]]


def front_of(df: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """Non-dominated COMPLETE, feasible, trained trials (all sources) for ``objectives``."""
    ok = df[(df["state"] == "COMPLETE") & (df["feasible"] == True) & df["accuracy"].notna()]  # noqa: E712
    return pareto_front(ok, {o: OBJECTIVES[o] for o in objectives})


def write_reports(study: optuna.Study, out_dir: str | Path, objectives: list[str]) -> pd.DataFrame:
    """Write ``trials.csv``, ``pareto.csv`` and, when the study has DeepReShape rule points, ``compare.csv`` and
    ``hypervolume.json`` into ``out_dir`` (each atomically: temp file + rename)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = trials_frame(study)
    _write_csv(df, out_dir / "trials.csv")
    _write_csv(front_of(df, objectives), out_dir / "pareto.csv")
    if (df["source"] == "rule").any():
        _write_csv(compare_table(df), out_dir / "compare.csv")
        _write_text(json.dumps(hypervolume_vs_rule(df), indent=1), out_dir / "hypervolume.json")
    return df


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    _write_text(df.to_csv(index=False), path)


def _write_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
