"""The ``fidelity_check:`` stage: is the level-0 ranking to be trusted, for ``n`` extra trainings?

After the round (and its promotions), ``n`` measured level-0 candidates spread evenly over the accuracy range
(:func:`~pisearch.report.spread_numbers`: not only the front, which promotion re-measures) are re-trained from
scratch at level 0's fidelity with the check's ``level`` keys changed, in the study ``<name>@check`` of the same
storage; ``fidelity.json`` then gives Kendall's τ between the two accuracies (:mod:`pisearch.report.agreement`).
Its trials never enter the front, compare.csv or the level ladder (their ``level`` is
:data:`~pisearch.study.store.CHECK_LEVEL`).

Like promotion, it is safe to resume and to run from several workers (:func:`~pisearch.study.runner.train_stage`):
a candidate is enqueued only while no check trial of the same ``level`` keys holds it, the study holds at most
``n`` of them, and of two trials enqueued for one candidate at once only the lower-numbered trains. A check whose
``level`` keys changed between runs starts anew beside the old one (each trial carries its keys as
``check_level``); a trial still waiting from the old check ends PRUNED untrained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import optuna
import pandas as pd

from pisearch.report import measured, spread_numbers
from pisearch.study.objective import CANDIDATE_ATTRS, TrialRunner, holds_result
from pisearch.study.promotion import PROMOTED_SOURCES, Callback, plain
from pisearch.study.runner import PreparedStudy, stage_wait_s, train_stage
from pisearch.study.slots import FINISHED, count_slots
from pisearch.study.store import CHECK_ATTR, CHECK_LEVEL, PARENT, check_name

CHECKED_SOURCES = PROMOTED_SOURCES  # proxy-trained at level 0 (linearized trials are not re-trained)


def check_key(level: dict) -> str:
    """The ``check_level`` attr of a check trial: its ``fidelity_check.level`` keys as canonical JSON."""
    return json.dumps(level, sort_keys=True)


def enqueue_check(prep: PreparedStudy) -> tuple[optuna.Study, int]:
    """Open (or create) ``<name>@check`` and enqueue the spread candidates that no trial of this check holds yet,
    until the check holds ``n``. Returns the check study and how many trials were enqueued."""
    config, store = prep.config, prep.store
    key = check_key(config.fidelity_check.level)
    study = store.create(check_name(config.name), config.directions, optuna.samplers.RandomSampler())
    held = {t.user_attrs.get(PARENT) for t in study.get_trials(deepcopy=False)
            if holds_result(t) and t.user_attrs.get(CHECK_ATTR) == key}
    room = config.fidelity_check.n - len(held)
    rows = measured(store.level_frame(config.name, 0))
    rows = rows[rows["source"].isin(CHECKED_SOURCES)] if len(rows) else rows
    added = 0
    for parent in spread_numbers(rows, config.fidelity_check.n) if len(rows) else []:
        if room <= 0:
            break
        if parent in held:
            continue
        row = rows[rows["number"] == parent].iloc[-1]
        attrs = {k: plain(row[k]) for k in CANDIDATE_ATTRS if pd.notna(row.get(k))}
        study.enqueue_trial({}, user_attrs={**attrs, PARENT: parent, CHECK_ATTR: key})
        added += 1
        room -= 1
    return study, added


@dataclass
class CheckRunner:
    """The objective of the check study: the check fidelity's runner, for trials of the current check only."""

    runner: TrialRunner
    key: str

    def __call__(self, trial: optuna.Trial) -> list[float]:
        if trial.user_attrs.get(CHECK_ATTR) != self.key:
            trial.set_user_attr("reason", "enqueued for a fidelity check with other level keys: not trained")
            raise optuna.TrialPruned()
        return self.runner(trial)


def run_fidelity_check(prep: PreparedStudy, worker_id: int, on_trial: Callback, progress: bool,
                       wait_for_others: bool, requeue: bool) -> None:
    """Re-train the check's candidates (module docstring) once the round is complete. ``requeue``: check trials
    a dead run left RUNNING are re-queued (only where no other process may be running them)."""
    config = prep.config
    if config.fidelity_check is None or count_slots(prep.study, FINISHED) < prep.total:
        return
    runner = TrialRunner(config, prep.space, prep.splits, config.check_fidelity, str(prep.out_dir),
                         level=CHECK_LEVEL, worker_id=worker_id)
    wait_s = stage_wait_s(config, wait_for_others)
    train_stage(lambda: enqueue_check(prep), CheckRunner(runner, check_key(config.fidelity_check.level)),
                prep.store, on_trial, progress, "fidelity check", wait_s, requeue, identity=(PARENT, CHECK_ATTR))
