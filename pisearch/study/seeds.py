"""The verdict stage (``compare: seeds``): after the round (and its promotions), every rule point and the searched
contenders at its budget (:func:`~pisearch.report.compare.seed_contenders`) are re-trained with ``seeds`` *training*
seeds at their comparison level, in the study ``<name>@seeds`` of the same storage (``verdict_runs.csv``, a row each),
so ``compare.csv`` gives verdicts with error bars (:mod:`pisearch.report.verdict`). Not to be confused with the
``init:`` seeds, designs the search starts from (``source=seed``).

The seeds are other than the search's own (the search chose its contenders on that one): ``study seed + 1000·k``
for k = 1 … seeds, the same for both sides, so each seed pairs a searched network with a rule point. Like
promotion, it is safe to resume and to run from several workers: a (trial, level, seed) is enqueued only while no
trial holds it, and the seed runs of one network share nothing but their spec, so a rule point and a seed of the
same design train once (identical spec, fidelity and seed reuse the result).
"""

from __future__ import annotations

import optuna
import pandas as pd

from pisearch.report import seed_contenders
from pisearch.study.objective import CANDIDATE_ATTRS, TRAIN_SEED, TrialRunner, holds_result
from pisearch.study.promotion import Callback, plain
from pisearch.study.runner import PreparedStudy, stage_wait_s, train_stage
from pisearch.study.slots import FINISHED, count_slots
from pisearch.study.store import PARENT, seeds_name

SEED_STEP = 1000  # seed k of the stage trains with the study's training seed + SEED_STEP · k
VERDICT_STAGE = "verdict runs"  # the stage's label (its progress bar); not the `init:` seeds of the search


def seed_values(base: int, seeds: int) -> list[int]:
    """The training seeds of the stage: ``base + 1000·k`` for k = 1 … ``seeds`` (never the search's ``base``)."""
    return [base + SEED_STEP * k for k in range(1, seeds + 1)]


def enqueue_seed_runs(prep: PreparedStudy) -> tuple[optuna.Study, int]:
    """Open (or create) ``<name>@seeds`` and enqueue each (contender, level, seed) that no trial there holds yet.
    Returns the seeds study and how many trials were enqueued."""
    config, store = prep.config, prep.store
    study = store.create(seeds_name(config.name), config.directions, optuna.samplers.RandomSampler())
    held = {(t.user_attrs.get(PARENT), t.user_attrs.get("level"), t.user_attrs.get(TRAIN_SEED))
            for t in study.get_trials(deepcopy=False) if holds_result(t)}
    added = 0
    for _, row in seed_contenders(store.trials(prep.study)).iterrows():
        level = int(row["level"])
        for seed in seed_values(config.levels[level].seed, config.compare.seeds):
            if (int(row["number"]), level, seed) in held:
                continue
            attrs = {k: plain(row[k]) for k in CANDIDATE_ATTRS if k in row and pd.notna(row[k])}
            study.enqueue_trial({}, user_attrs={**attrs, PARENT: int(row["number"]), "level": level,
                                                TRAIN_SEED: seed})
            added += 1
    return study, added


class ByLevel:
    """The objective of the seeds study: each trial trains with the runner of its comparison level."""

    def __init__(self, prep: PreparedStudy, worker_id: int) -> None:
        self.runners = [TrialRunner(prep.config, prep.space, prep.splits, fidelity, str(prep.out_dir), level=level,
                                    worker_id=worker_id) for level, fidelity in enumerate(prep.config.levels)]

    def __call__(self, trial: optuna.Trial) -> list[float]:
        return self.runners[int(trial.user_attrs["level"])](trial)


def run_seed_stage(prep: PreparedStudy, worker_id: int, on_trial: Callback, progress: bool,
                   wait_for_others: bool, requeue: bool) -> None:
    """Re-train the contenders with every seed (module docstring), once the round is complete and the study has
    rule points (:func:`~pisearch.study.runner.train_stage`). ``requeue``: seed runs a dead run left RUNNING are
    re-queued (only where no other process may be running them)."""
    config = prep.config
    if config.compare.seeds == 0 or count_slots(prep.study, FINISHED) < prep.total or not config.baselines.deepreshape:
        return
    wait_s = stage_wait_s(config, wait_for_others)
    train_stage(lambda: enqueue_seed_runs(prep), ByLevel(prep, worker_id), prep.store, on_trial, progress, VERDICT_STAGE,
                wait_s, requeue, identity=(PARENT, "level", TRAIN_SEED))
