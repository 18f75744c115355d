"""The reports of a run folder (``trials.csv``, ``pareto.csv``, ``compare.csv``, ``hypervolume.json``,
``fidelity.json``): always regenerable from the storage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pandas as pd

from pisearch.report import (
    MIN_CANDIDATES, MIN_TAU, compare_table, highest_level, hypervolume_vs_rule, linearized_table, measured,
    pareto_front, proxy_trained, rank_agreements, relu_sensitivity, trials_table,
)
from pisearch.study.config import OBJECTIVES, ProtocolConfig
from pisearch.study.slots import redrawn
from pisearch.study.store import CHECK_ATTR, OUTSIDE_SPACE, Store

FIDELITY_FILE = "fidelity.json"
VERDICT_RUNS = "verdict_runs.csv"  # the verdict stage's re-trainings (compare: seeds), one training seed a row
COMPARE_NOTES = "compare_notes.txt"  # compare.csv's notes (a CSV with comment lines would break its readers)


def shown_states(df: pd.DataFrame) -> pd.Series:
    """Each trial's state as a user reads it: Optuna's, or ``re-drawn`` for a trial untrained on purpose (a
    duplicate or an over-budget design whose slot went to a new draw: :data:`~pisearch.study.slots.REDRAWN`)."""
    return df["state"].where(~df["reason"].map(redrawn), "re-drawn")


def state_summary(df: pd.DataFrame) -> str:
    """Trial states per fidelity level of a trials table, e.g. ``5 complete, 1 pruned; level 1: 2 complete`` (a
    re-drawn duplicate or over-budget design counts as ``re-drawn``, not as a failure or a completed trial)."""
    parts = []
    state = shown_states(df)
    for level, rows in state.groupby(pd.to_numeric(df["level"], errors="coerce").fillna(0).astype(int)):
        states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(rows.value_counts().items()))
        parts.append(states if level == 0 else f"level {level}: {states}")
    return "; ".join(parts)


def front_of(df: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """Non-dominated measured candidates for ``objectives``, each at its highest fidelity level: proxy-trained
    ones only (searched, seeds, rule points, named nets); linearized trials had more training than their level
    and are reported as their own series (``linearized.csv``)."""
    pool = proxy_trained(highest_level(measured(trials_table(df))))
    return pareto_front(pool, {o: OBJECTIVES[o] for o in objectives})


def fidelity_report(store: Store, study: optuna.Study, trials: pd.DataFrame) -> dict:
    """What ``fidelity.json`` holds: the thresholds of a warning and every rank agreement of the study (each promoted
    level against the level below, level 0 against the fidelity check: :func:`~pisearch.report.rank_agreements`)."""
    agreements = rank_agreements(trials, store.check_frame(study.study_name), CHECK_ATTR)
    return {"study": study.study_name, "min_tau": MIN_TAU, "min_candidates": MIN_CANDIDATES, "agreements": agreements}


def notes_of(agreements: list[dict], compare: pd.DataFrame | None, seed_runs: pd.DataFrame | None) -> list[str]:
    """The lines a reader of compare.csv needs before its verdicts (``compare_notes.txt`` and the run summary):
    whether the fidelity separates the rule's budgets at all (:func:`~pisearch.report.relu_sensitivity`), then the
    rank agreement of the study's fidelities (``fidelity.json``). Warnings start with ``warning:``."""
    sensitivity = None if compare is None else relu_sensitivity(compare, seed_runs)
    lines = [] if sensitivity is None else [sensitivity["text"]]
    if agreements:
        lines += [f"rank agreement of the fidelities ({FIDELITY_FILE}):"] + [e["text"] for e in agreements]
    return lines


def outside_notes(trials: pd.DataFrame) -> list[str]:
    """One line per baseline outside the search space (:data:`~pisearch.study.store.OUTSIDE_SPACE`): it is
    trained and compared, but no sampler observes it or breeds from it."""
    if OUTSIDE_SPACE not in trials:
        return []
    rows = trials[trials[OUTSIDE_SPACE].notna()].drop_duplicates("number")
    return [f"{row['label']} ({row['source']}) is outside the space — {row[OUTSIDE_SPACE]}: trained and compared, "
            "never a sampler observation or parent" for _, row in rows.iterrows()]


def run_notes(store: Store, study: optuna.Study, trials: pd.DataFrame) -> tuple[str, ...]:
    """:func:`outside_notes` and :func:`notes_of` for a study's storage (what ``pisearch run`` prints after the
    study)."""
    agreements = fidelity_report(store, study, trials)["agreements"]
    if not (trials["source"] == "rule").any():
        return tuple(outside_notes(trials) + notes_of(agreements, None, None))
    runs = store.seed_runs(study.study_name)
    return tuple(outside_notes(trials) + notes_of(agreements, compare_table(trials, runs), runs))


def write_reports(store: Store, study: optuna.Study, out_dir: str | Path, objectives: list[str]) -> pd.DataFrame:
    """Write ``trials.csv`` (one row per trial and fidelity level), ``pareto.csv`` (the proxy-trained front),
    ``linearized.csv`` (linearized trials with their training beside their parent's) when there are any, when the
    study has a promoted level or a fidelity check ``fidelity.json`` (:func:`fidelity_report`) and, when it has
    DeepReShape rule points, ``compare.csv`` (its notes, :func:`notes_of`, in ``compare_notes.txt``),
    ``hypervolume.json`` and (with ``compare: seeds``) ``verdict_runs.csv``, one row per re-training of the verdict
    stage (a training seed each), into ``out_dir``
    (each atomically: temp file + rename); returns the trials table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = store.trials(study)
    _write_csv(df, out_dir / "trials.csv")
    _write_csv(front_of(df, objectives), out_dir / "pareto.csv")
    linearized = linearized_table(df)
    if len(linearized):
        _write_csv(linearized, out_dir / "linearized.csv")
    fidelity = fidelity_report(store, study, df)
    if fidelity["agreements"]:
        write_atomic(json.dumps(fidelity, indent=1, ensure_ascii=False), out_dir / FIDELITY_FILE)
    if (df["source"] == "rule").any():
        runs = store.seed_runs(study.study_name)
        if len(runs):
            _write_csv(runs, out_dir / VERDICT_RUNS)
        compare = compare_table(df, runs).assign(latency_source=latency_source(study, df))
        _write_csv(compare, out_dir / "compare.csv")
        write_atomic(json.dumps(hypervolume_vs_rule(df), indent=1), out_dir / "hypervolume.json")
        notes = outside_notes(df) + notes_of(fidelity["agreements"], compare, runs)
        if notes:
            write_atomic("\n".join(notes) + "\n", out_dir / COMPARE_NOTES)
    return df


def latency_source(study: optuna.Study, trials: pd.DataFrame) -> str:
    """What compare.csv's latency columns are: the study's protocol estimate, always (its contenders are chosen among
    every trial, and the ``measure:`` stage runs only a few under SPU), and how many trials also have SPU figures."""
    stored = json.loads(study.user_attrs.get("config", "{}")).get("protocol", {})
    protocol = ProtocolConfig.model_validate(stored)
    measured_trials = trials.loc[trials["measured_protocol"].notna(), "number"].nunique() \
        if "measured_protocol" in trials else 0
    also = f"; {measured_trials} trials also measured under SPU (trials.csv measured_*)" if measured_trials else ""
    return f"estimated ({protocol.name} model, {protocol.network}){also}"


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    write_atomic(df.to_csv(index=False), path)


def write_atomic(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: workers may share a run folder
    tmp.write_text(text)
    tmp.replace(path)
