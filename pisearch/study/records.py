"""Trial tables from an Optuna storage: ``trials.csv`` and ``pareto.csv`` are always regenerable from it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import optuna
import pandas as pd

from pisearch.errors import UserError
from pisearch.report import pareto_front
from pisearch.report.compare import compare_table, highest_level, hypervolume_vs_rule, measured, trials_table
from pisearch.study.config import OBJECTIVES

# Column order of trials.csv; user attrs not listed here follow, then the spec JSON last.
COLUMNS = [
    "number", "state", "source", "label", "budget", "level", "accuracy", "relus", "relus_b", "polys", "macs",
    "params", "latency_ms", "comm_mb", "feasible", "reason", "summary", "spec_hash", "train_seconds",
    "images_per_second", "retried", "reused_from", "fidelity", "datetime_start", "datetime_complete", "duration_s",
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


LEVEL_SUFFIX = re.compile(r"@L(\d+)$")  # level L ≥ 1 of study <name> lives in the study "<name>@L<L>"


def base_names(names: list[str]) -> list[str]:
    """Study names that are not fidelity-level studies."""
    return [n for n in names if not LEVEL_SUFFIX.search(n)]


def pick_study(label: str, names: list[str], wanted: str | None) -> str:
    """The study to open among a storage's ``names`` (fidelity-level studies aside): ``wanted``, or the only one;
    anything else raises a one-line :class:`UserError` starting with ``label`` that lists the studies."""
    bases = base_names(names)
    if wanted is None and len(bases) == 1:
        return bases[0]
    if wanted is None:
        raise UserError(f"{label}: holds {len(bases)} studies ({', '.join(bases) or 'none'}); name one with --study")
    if wanted not in bases:
        raise UserError(f"{label}: no study {wanted!r} (it holds: {', '.join(bases) or 'none'})")
    return wanted


def level_count(names: list[str], name: str) -> int:
    """How many fidelity levels study ``name`` has in a storage holding ``names`` (1 = level 0 only)."""
    levels = [int(m.group(1)) for n in names if (m := LEVEL_SUFFIX.search(n)) and n[:m.start()] == name]
    return 1 + max(levels, default=0)


def level_name(name: str, level: int) -> str:
    """Study name of fidelity ``level`` (level 0 is the study itself; see ``pisearch.study.promotion``)."""
    return name if level == 0 else f"{name}@L{level}"


def level_frame(storage, name: str, level: int) -> pd.DataFrame:
    """Rows measured at ``level``, with ``number`` = the level-0 trial number and ``level_trial`` = the trial's
    number in the level study (empty when the level study does not exist yet)."""
    try:
        study = optuna.load_study(study_name=level_name(name, level), storage=storage)
    except KeyError:
        return pd.DataFrame(columns=COLUMNS + ["spec"])
    return _level_rows(study, level)


def _level_rows(study: optuna.Study, level: int) -> pd.DataFrame:
    """:func:`level_frame` of an open study: level 0 as it is (a missing level read as 0), a level study's
    promotions renumbered by their parent."""
    df = trials_frame(study)
    if level == 0:
        return df.assign(level=df["level"].fillna(0))
    df = df[df["parent"].notna()] if "parent" in df else df.iloc[0:0]
    return df.assign(level_trial=df["number"], number=df["parent"].astype(int), level=level)


def all_levels(study: optuna.Study, storage, levels: int = 1) -> pd.DataFrame:
    """One row per measurement: level 0 from ``study``, then each higher level's promotions."""
    frames = [_level_rows(study, 0)]
    frames += [level_frame(storage, study.study_name, lv) for lv in range(1, levels)]
    filled = [f for f in frames if len(f)]  # concat warns on empty frames
    return pd.concat(filled, ignore_index=True) if len(filled) > 1 else (filled or frames)[0]


def state_summary(df: pd.DataFrame) -> str:
    """Trial states per fidelity level of a trials table, e.g. ``5 complete, 1 pruned; level 1: 2 complete``."""
    parts = []
    for level, rows in df.groupby(pd.to_numeric(df["level"], errors="coerce").fillna(0).astype(int)):
        states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(rows["state"].value_counts().items()))
        parts.append(states if level == 0 else f"level {level}: {states}")
    return "; ".join(parts)


def front_of(df: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """Non-dominated measured candidates (all sources) for ``objectives``, each at its highest fidelity level."""
    return pareto_front(highest_level(measured(trials_table(df))), {o: OBJECTIVES[o] for o in objectives})


def write_reports(study: optuna.Study, out_dir: str | Path, objectives: list[str], *, storage=None,
                  levels: int = 1) -> pd.DataFrame:
    """Write ``trials.csv`` (one row per trial and fidelity level), ``pareto.csv`` and, when the study has
    DeepReShape rule points, ``compare.csv`` and ``hypervolume.json`` into ``out_dir`` (each atomically:
    temp file + rename). ``storage`` (URL or storage object) is needed only for ``levels`` > 1."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = all_levels(study, storage, levels) if levels > 1 else trials_frame(study)
    _write_csv(df, out_dir / "trials.csv")
    _write_csv(front_of(df, objectives), out_dir / "pareto.csv")
    if (df["source"] == "rule").any():
        _write_csv(compare_table(df), out_dir / "compare.csv")
        write_atomic(json.dumps(hypervolume_vs_rule(df), indent=1), out_dir / "hypervolume.json")
    return df


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    write_atomic(df.to_csv(index=False), path)


def write_atomic(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: workers may share a run folder
    tmp.write_text(text)
    tmp.replace(path)
