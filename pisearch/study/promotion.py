"""Multi-fidelity promotion, built on the storage: one Optuna study per fidelity level.

Level 0 is the study itself; level L ≥ 1 is the study ``<name>@L<L>`` in the same storage. After a round at
level L−1, the non-dominated trials plus an ε-band around them (accuracy within ``epsilon`` of the front), and
every baseline (rule points, named nets, so comparisons stay at one level), are enqueued at level L as trials
with the fixed param ``parent`` = the level-0 trial number. ``enqueue_trial(skip_if_exists=True)`` never
enqueues a parent twice and popping a waiting trial is atomic in Optuna's storages, so several workers can
promote at once without training a parent twice; a resumed run finds its level studies and goes on.
Optuna's multi-objective studies cannot prune, which is why promotion re-trains in separate studies.
"""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from pisearch.report import pareto_mask
from pisearch.study.config import OBJECTIVES
from pisearch.study.objective import TrialDiverged, TrialRunner
from pisearch.report.compare import measured
from pisearch.study.records import level_frame, level_name

PARENT = "parent"


def band_parents(level_rows: pd.DataFrame, objectives: list[str], epsilon: float) -> list[int]:
    """Level-0 trial numbers to promote from one level's rows: searched trials on the front or within
    ``epsilon`` accuracy (0–1) of it, and every measured baseline."""
    ok = measured(level_rows)
    search = ok[ok["source"] == "search"]
    keep: set[int] = set(ok.loc[ok["source"] != "search", "number"])
    if len(search):
        slack = [epsilon if o == "accuracy" else 0.0 for o in objectives]
        mask = pareto_mask(search[objectives].to_numpy(float), [OBJECTIVES[o] for o in objectives], slack)
        keep |= set(search.loc[mask, "number"])
    return sorted(int(n) for n in keep)


def promote(runner: TrialRunner, storage: str, name: str, level: int, epsilon: float,
            directions: list[str]) -> int:
    """Enqueue the band of level ``level − 1`` at ``level`` and train every waiting promotion with
    ``runner`` (whose fidelity and ``level`` are this level's). Returns the number of trials this process ran."""
    below = level_frame(storage, name, level - 1)
    study = optuna.create_study(study_name=level_name(name, level), storage=storage, directions=directions,
                                sampler=optuna.samplers.RandomSampler(), load_if_exists=True)
    if len(below):
        for parent in band_parents(below, runner.config.objectives, epsilon):
            row = below[below["number"] == parent].iloc[-1]
            attrs = {k: _plain(row[k]) for k in ("source", "label", "budget", "spec") if pd.notna(row.get(k))}
            study.enqueue_trial({PARENT: parent}, user_attrs={**attrs, PARENT: parent}, skip_if_exists=True)
    ran = 0
    while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial = study.ask()
        if PARENT not in trial.user_attrs:  # another worker took the last waiting promotion first
            trial.set_user_attr("reason", "no promotion was waiting")
            study.tell(trial, state=TrialState.PRUNED)
            break
        try:
            study.tell(trial, runner(trial))
        except TrialDiverged:
            study.tell(trial, state=TrialState.FAIL)
        ran += 1
    return ran


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
