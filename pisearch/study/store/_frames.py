"""Trials tables from studies, and the auxiliary studies that hold a study's other measurements.

Level 0 is the study itself; level L ≥ 1 of study ``<name>`` lives in the study ``<name>@L<L>`` of the same storage,
the seed re-trainings of ``compare: seeds`` in ``<name>@seeds`` and the re-trainings of ``fidelity_check:`` in
``<name>@check`` (off the level ladder: never in the front or compare.csv); their trials carry the user attr ``parent``
(the level-0 trial number they re-measure). Names with ``@`` are never a study of their own.
"""

from __future__ import annotations

import json
import re

import optuna
import pandas as pd

# Column order of trials.csv; user attrs not listed here follow, then the spec JSON last.
COLUMNS = [
    "number", "state", "source", "label", "budget", "level", "accuracy", "relus", "relus_b", "polys", "macs",
    "params", "latency_ms", "comm_mb", "feasible", "reason", "summary", "spec_hash", "train_seconds",
    "images_per_second", "retried", "reused_from", "fidelity", "datetime_start", "datetime_complete", "duration_s",
    "optuna_params",
]
RETRY_OF = "retry_of"  # user attr of a trial re-queued for a dead one: the dead trial's number
PARENT = "parent"      # user attr (and fixed param) of a level trial: the level-0 trial it re-measures
LEVEL_SUFFIX = re.compile(r"@L(\d+)$")
SEEDS_SUFFIX = "@seeds"
CHECK_SUFFIX = "@check"
CHECK_LEVEL = -1  # the ``level`` a fidelity-check trial records: a fidelity off the promotion ladder
CHECK_ATTR = "check_level"  # user attr of a fidelity-check trial: its ``fidelity_check.level`` keys (JSON)
# user attr of a baseline the search space cannot express (why not): measured like any baseline, but its trial ends
# FAIL in Optuna's storage so that no sampler observes it; the trials table shows it COMPLETE once it has an accuracy
OUTSIDE_SPACE = "outside_space"
OUTSIDE_MEASURED = "outside the space: trained and compared, never shown to the sampler"  # its reason, set last
# study attr ``measured:<trial number>``: the SPU record of that trial (JSON, pisearch.mpc.measure_model's), written
# by the ``measure:`` stage; the trials table shows it in the columns below (per single-image inference)
MEASURED = "measured:"
MEASURED_COLUMNS = {
    "measured_protocol": lambda r: r["protocol"],
    "measured_lan_ms": lambda r: r["latency_ms"]["lan"],
    "measured_wan_ms": lambda r: r["latency_ms"]["wan"],
    "measured_comm_mb": lambda r: r["per_image"]["comm_mb"],
    "measured_seconds": lambda r: r["per_image"]["seconds"],
}


def measured_outside(trial: optuna.trial.FrozenTrial) -> bool:
    """A baseline outside the space whose measurement finished (FAIL on purpose, with :data:`OUTSIDE_MEASURED` as
    its reason, set after everything else): one whose process died before that is re-run like any trial."""
    return (trial.state == optuna.trial.TrialState.FAIL and OUTSIDE_SPACE in trial.user_attrs
            and trial.user_attrs.get("reason") == OUTSIDE_MEASURED)


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: state, user attrs (source, metrics, spec, fidelity …) and timing. A trial that died
    mid-run and was re-queued gets the reason ``interrupted … re-run as trial K`` unless it has one; a measured
    baseline outside the space (:data:`OUTSIDE_SPACE`) reads COMPLETE."""
    rows = []
    trials = study.get_trials(deepcopy=False)
    reruns = {t.user_attrs[RETRY_OF]: t.number for t in trials if RETRY_OF in t.user_attrs}
    for t in trials:
        row = {
            "number": t.number,
            "state": "COMPLETE" if measured_outside(t) else t.state.name,
            "datetime_start": t.datetime_start,
            "datetime_complete": t.datetime_complete,
            "duration_s": t.duration.total_seconds() if t.duration else None,
            "optuna_params": json.dumps(t.params, sort_keys=True),
        }
        for key, value in t.user_attrs.items():
            row[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
        if t.number in reruns and row.get("reason") is None:
            row["reason"] = f"interrupted (its process ended mid-trial); re-run as trial {reruns[t.number]}"
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in COLUMNS + ["spec"]:
        if col not in df:
            df[col] = pd.NA
    extra = [c for c in df.columns if c not in COLUMNS and c != "spec"]
    return df[COLUMNS + extra + ["spec"]]


def measured_records(attrs: dict) -> dict[int, dict]:
    """The SPU records among a study's user attrs (:data:`MEASURED`), by trial number."""
    return {int(key[len(MEASURED):]): json.loads(value) for key, value in attrs.items() if key.startswith(MEASURED)}


def with_measured(df: pd.DataFrame, attrs: dict) -> pd.DataFrame:
    """``df`` with the :data:`MEASURED_COLUMNS` of the trials that have an SPU record in ``attrs`` (a study's user
    attrs), by trial number; unchanged when none has."""
    records = measured_records(attrs)
    if not records or not len(df):
        return df
    return df.assign(**{col: df["number"].map(lambda n, f=f: f(records[n]) if n in records else None)
                        for col, f in MEASURED_COLUMNS.items()})


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame(columns=COLUMNS + ["spec"])


def level_name(name: str, level: int) -> str:
    """Study name of fidelity ``level`` of study ``name`` (level 0 is the study itself)."""
    return name if level == 0 else f"{name}@L{level}"


def seeds_name(name: str) -> str:
    """Study name of the seed re-trainings (``compare: seeds``) of study ``name``."""
    return f"{name}{SEEDS_SUFFIX}"


def check_name(name: str) -> str:
    """Study name of the fidelity check (``fidelity_check:``) of study ``name``."""
    return f"{name}{CHECK_SUFFIX}"


def base_names(names: list[str]) -> list[str]:
    """Study names that are not auxiliary studies (fidelity levels, seed re-trainings)."""
    return [n for n in names if "@" not in n]


def level_count(names: list[str], name: str) -> int:
    """How many fidelity levels study ``name`` has in a storage holding ``names`` (1 = level 0 only)."""
    levels = [int(m.group(1)) for n in names if (m := LEVEL_SUFFIX.search(n)) and n[:m.start()] == name]
    return 1 + max(levels, default=0)


def level_rows(study: optuna.Study, level: int) -> pd.DataFrame:
    """Rows measured at ``level`` by ``study`` (the level's study): level 0 as it is (a missing level read as 0);
    a level study's promotions with ``number`` = their parent's level-0 trial number and ``level_trial`` = the
    trial's number in the level study."""
    df = trials_frame(study)
    if level == 0:
        return df.assign(level=df["level"].fillna(0))
    parent = df[PARENT] if PARENT in df else pd.Series(float("nan"), index=df.index)  # no column: no trials yet
    df = df[parent.notna()]
    return df.assign(level_trial=df["number"], number=parent[df.index].astype(int), level=level)


def concat_levels(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One table of the levels' rows (the first frame's columns when every frame is empty)."""
    filled = [f for f in frames if len(f)]  # concat warns on empty frames
    return pd.concat(filled, ignore_index=True) if len(filled) > 1 else (filled or frames)[0]
