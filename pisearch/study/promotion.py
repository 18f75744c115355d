"""Multi-fidelity promotion, built on the storage: one Optuna study per fidelity level.

Level 0 is the study itself; level L ≥ 1 is the study ``<name>@L<L>`` in the same storage. After a round at
level L−1, the non-dominated candidates plus an ε-band around them (accuracy within ``epsilon`` of the front) are
enqueued at level L with ``parent`` = the level-0 trial number (a fixed param and a user attr). Candidates are the
measured searched and seeded trials, rule points and named nets together, at level L−1 (linearized trials are not
re-trained): a baseline is re-measured when it contends, and compare.csv compares each rule point at the highest
level it shares with the searched trials. With ``promotion.warm_start`` a promoted trial carries the artifact id
of its weights at level L−1 and trains only the epochs level L adds (``TrialRunner.start_model``).

Safe to resume and to run from several workers: a parent is enqueued only while no level trial holds it
(:func:`~pisearch.study.objective.holds_result`: waiting, running, done or diverged; an interrupted or crashed
one does not, so nothing promoted is lost), popping a waiting trial is atomic in Optuna's storages, and of two
trials that workers enqueued for one parent at the same moment only the lower-numbered trains. Optuna's
multi-objective studies cannot prune, which is why promotion re-trains in separate studies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from pisearch.report import PROXY_TRAINED, measured, pareto_mask
from pisearch.study.artifacts import WEIGHTS_ATTR
from pisearch.study.config import OBJECTIVES
from pisearch.study.objective import CANDIDATE_ATTRS, WARM_WEIGHTS, TrialDiverged, TrialRunner, holds_result
from pisearch.study.store import PARENT, Store

Callback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]
PROMOTED_SOURCES = PROXY_TRAINED  # searched, seeded, rule and net candidates (linearized trials are not re-trained)


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


def enqueue_band(runner: TrialRunner, store: Store, name: str, level: int, epsilon: float,
                 directions: list[str]) -> tuple[optuna.Study, int]:
    """Open (or create) the study of ``level`` and enqueue each parent of the band of level ``level − 1`` that
    no level trial holds yet (:func:`holds_result`); with ``runner.warm_epochs`` set, each carries its
    weights at the level below. Returns the level study and how many trials were enqueued."""
    below = measured(store.level_frame(name, level - 1))
    study = store.level_study(name, level, directions)
    held = {t.user_attrs.get(PARENT) for t in study.get_trials(deepcopy=False) if holds_result(t)}
    added = 0
    for parent in band_parents(below, runner.config.objectives, epsilon) if len(below) else []:
        if parent in held:
            continue
        row = below[below["number"] == parent].iloc[-1]  # the parent's measured row at the level below
        attrs = {k: plain(row[k]) for k in CANDIDATE_ATTRS if pd.notna(row.get(k))}
        if runner.warm_epochs is not None and isinstance(row.get(WEIGHTS_ATTR), str):
            attrs[WARM_WEIGHTS] = row[WEIGHTS_ATTR]
        study.enqueue_trial({PARENT: parent}, user_attrs={**attrs, PARENT: parent})
        added += 1
    return study, added


def train_waiting(runner: Callable[[optuna.Trial], list[float]], store: Store, study: optuna.Study,
                  callbacks: Sequence[Callback] = (), wait_s: float | None = None,
                  identity: Sequence[str] = (PARENT,)) -> int:
    """Train the waiting promotions of a level ``study`` with ``runner`` (whose fidelity and ``level`` are that
    level's) through ``study.optimize`` (so server storages send heartbeats, and a dead worker's promotion is
    failed and re-queued); each ``callback(study, trial)`` runs after each trial. Workers that enqueued the same
    parent at once resolve it here: only the lowest-numbered trial holding a parent (the same values of the user
    attrs ``identity``) trains, later ones end PRUNED. ``wait_s``: also wait, polling every ``wait_s`` seconds,
    until trials other workers run have ended, so the level is complete on return. Returns the number of trials
    this process ran."""
    ran = 0

    def objective(trial: optuna.Trial) -> list[float]:
        nonlocal ran
        parent = trial.user_attrs.get(PARENT)
        if parent is None:  # another worker took the last waiting trial first
            trial.set_user_attr("reason", "no promotion was waiting")
            study.stop()
            raise optuna.TrialPruned()
        key = [trial.user_attrs.get(k) for k in identity]
        first = min(t.number for t in study.get_trials(deepcopy=False)
                    if [t.user_attrs.get(k) for k in identity] == key and (holds_result(t) or t.number == trial.number))
        if first != trial.number:
            held = ", ".join(f"{k} {v}" for k, v in zip(identity, key))
            trial.set_user_attr("reason", f"duplicate ({held}): trial {first} of this stage has it")
            raise optuna.TrialPruned()
        ran += 1
        return runner(trial)

    while True:
        waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        if waiting:
            study.optimize(objective, n_trials=waiting, catch=(TrialDiverged,), callbacks=list(callbacks))
        elif wait_s is not None and study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            time.sleep(wait_s)
            store.fail_stale(study)
        else:
            return ran


def plain(value):
    """A pandas/numpy scalar as the plain Python value Optuna stores (JSON)."""
    return value.item() if isinstance(value, np.generic) else value
