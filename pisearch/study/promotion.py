"""Multi-fidelity promotion, built on the storage: one Optuna study per fidelity level.

Level 0 is the study itself; level L ≥ 1 is the study ``<name>@L<L>`` in the same storage. After a round at
level L−1, the non-dominated candidates plus an ε-band around them (accuracy within ``epsilon`` of the front) are
enqueued at level L as trials with the fixed param ``parent`` = the level-0 trial number. Candidates are the
measured searched trials, rule points and named nets together (the front of ``pareto.csv``): a baseline is
re-measured when it contends, and compare.csv compares each rule point at the highest level it shares with the
searched trials. With ``promotion.warm_start`` a promoted trial carries the artifact id of its weights at level
L−1 and trains only the epochs level L adds (``TrialRunner.start_model``). ``enqueue_trial(skip_if_exists=True)`` never
enqueues a parent twice and popping a waiting trial is atomic in Optuna's storages, so several workers can
promote at once without training a parent twice; a resumed run finds its level studies and goes on.
Optuna's multi-objective studies cannot prune, which is why promotion re-trains in separate studies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from pisearch.report import pareto_mask
from pisearch.report.compare import measured
from pisearch.study.artifacts import WEIGHTS_ATTR
from pisearch.study.config import OBJECTIVES
from pisearch.study.objective import WARM_WEIGHTS, TrialDiverged, TrialRunner
from pisearch.study.records import level_frame, level_name

PARENT = "parent"
Callback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


PROMOTED_SOURCES = ("search", "rule", "net")  # proxy-trained candidates (linearized trials are not re-trained)


def band_parents(level_rows: pd.DataFrame, objectives: list[str], epsilon: float) -> list[int]:
    """Level-0 trial numbers to promote from one level's rows: measured searched trials, rule points and named
    nets on their common front or within ``epsilon`` accuracy (0–1) of it."""
    ok = measured(level_rows)
    ok = ok[ok["source"].isin(PROMOTED_SOURCES)]
    if not len(ok):
        return []
    slack = [epsilon if o == "accuracy" else 0.0 for o in objectives]
    mask = pareto_mask(ok[objectives].to_numpy(float), [OBJECTIVES[o] for o in objectives], slack)
    return sorted(int(n) for n in ok.loc[mask, "number"])


def enqueue_band(runner: TrialRunner, storage: str, name: str, level: int, epsilon: float,
                 directions: list[str]) -> optuna.Study:
    """Open (or create) the study of ``level`` and enqueue the band of level ``level − 1`` in it, each parent
    once; with ``runner.warm_epochs`` set, each carries its weights at the level below."""
    below = level_frame(storage, name, level - 1)
    study = optuna.create_study(study_name=level_name(name, level), storage=storage, directions=directions,
                                sampler=optuna.samplers.RandomSampler(), load_if_exists=True)
    if len(below):
        for parent in band_parents(below, runner.config.objectives, epsilon):
            row = below[below["number"] == parent].iloc[-1]
            attrs = {k: _plain(row[k]) for k in ("source", "label", "budget", "spec") if pd.notna(row.get(k))}
            if runner.warm_epochs is not None and isinstance(row.get(WEIGHTS_ATTR), str):
                attrs[WARM_WEIGHTS] = row[WEIGHTS_ATTR]
            study.enqueue_trial({PARENT: parent}, user_attrs={**attrs, PARENT: parent}, skip_if_exists=True)
    return study


def train_waiting(runner: TrialRunner, study: optuna.Study, callbacks: Sequence[Callback] = ()) -> int:
    """Train every waiting promotion of a level ``study`` with ``runner`` (whose fidelity and ``level`` are that
    level's), calling each ``callback(study, trial)`` after each. Returns the number of trials this process ran."""
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
        for callback in callbacks:
            callback(study, study.get_trials(deepcopy=False)[trial.number])
    return ran


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
