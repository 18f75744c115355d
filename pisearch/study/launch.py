"""Run a study in one process, or in ``jobs`` worker processes on one machine supervised by this one.

With ``jobs`` > 1 (``pisearch run --jobs N``, ``jobs:`` in the study file) this process prepares the study (baselines
enqueued once, trials of a dead earlier run re-queued), then starts N spawned worker processes on the same storage,
each with its own sampler seed (worker ids 0 … N−1). The workers share the trials total exactly (the slots of
:mod:`pisearch.study.slots`), and each promotion is trained once. Only this process writes the reports and shows
progress: it polls the storage, rewriting trials.csv, pareto.csv and compare.csv whenever a trial finished. A worker
that dies (killed, out of memory, a crash) takes nothing else down: its running trials are re-queued and a new
worker takes its place (at most ``jobs`` replacements). Ctrl-C stops every worker; their running trials are
re-queued, so the same command resumes the study.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
import torch
from tqdm.auto import tqdm

from pisearch.config import validate
from pisearch.errors import UserError
from pisearch.space import SearchSpace
from pisearch.study.config import StudyConfig
from pisearch.study.dashboard_data import write_dashboard
from pisearch.study.fidelity_check import run_fidelity_check
from pisearch.study.linearize_stage import linearize_front
from pisearch.study.measure_stage import check_measure_stage, measure_front
from pisearch.study.objective import WORKER
from pisearch.study.records import run_notes, write_reports
from pisearch.study.runner import (
    REQUEUED_ATTRS, WAITING, PreparedStudy, Progress, count_trials, prepare_study, run_levels, run_round,
)
from pisearch.study.seeds import VERDICT_STAGE, run_seed_stage
from pisearch.study.slots import FINISHED, count_slots, slot_holders
from pisearch.study.store import Store, check_name, level_name, seeds_name
from pisearch.train import resolved_precision

POLL_S = 1.0  # how often the supervisor looks at its workers and the storage
# `jobs: auto` on a GPU: 8 processes shared one H100 in the proxy-fidelity runs (one small proxy cannot fill it);
# not measured per N on a GPU yet (benchmarks/parallel_jobs.py --device cuda does).
GPU_JOBS = 8


@dataclass
class RunResult:
    study: optuna.Study
    out_dir: Path
    trials: pd.DataFrame
    wall_seconds: float
    notes: tuple[str, ...] = ()  # records.notes_of: ReLU sensitivity and rank agreements, warnings included


def physical_cores() -> int:
    """Physical CPU cores this process may run on (hyper-threads counted once where /proc/cpuinfo says)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return usable
    cores, physical = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "physical id":
            physical = value.strip()
        elif key.strip() == "core id":
            cores.add((physical, value.strip()))
    return max(1, min(usable, len(cores) or usable))


def resolve_jobs(jobs: int | str, config: StudyConfig) -> int:
    """Worker processes for ``jobs``: a number, or ``auto`` = physical cores ÷ the proxy's torch threads on CPU,
    :data:`GPU_JOBS` on a GPU."""
    if jobs != "auto":
        return int(jobs)
    if config.device.startswith("cuda"):
        return GPU_JOBS
    return max(1, physical_cores() // (config.levels[0].threads or 1))


def run_study(config: StudyConfig, space: SearchSpace | str | Path, *, n_trials: int | None = None,
              timeout_s: float | None = None, storage: str | None = None, out_dir: str | Path | None = None,
              progress: bool = True, worker_id: int = 0, jobs: int | str | None = None) -> RunResult:
    """Launch or resume the study (:func:`~pisearch.study.runner.prepare_study`), run its round until it holds
    ``n_trials`` finished trials (all workers together) or for ``timeout_s`` seconds, promote the front level by
    level, run the ``fidelity_check:``, ``linearize:`` and ``measure:`` stages, and write the reports (after every
    trial, so nothing is lost on a crash) and the dashboard. ``jobs`` (default: the file's ``jobs``): worker
    processes on this machine (module docstring); ``worker_id`` seeds the sampler of a single-process run
    (``pisearch worker``).
    ``RunResult.notes``: :func:`~pisearch.study.records.notes_of` (the ReLU sensitivity of the fidelity and the rank
    agreements of ``fidelity.json``), warnings included."""
    start = time.perf_counter()
    check_measure_stage(config)
    prep = prepare_study(config, space, n_trials=n_trials, storage=storage, out_dir=out_dir, worker_id=worker_id)
    if config.levels[0].precision == "auto" and prep.config.levels[0].precision != resolved_precision(
            config.levels[0], config.device):
        print(f"note: study {config.name!r} trains in {prep.config.levels[0].precision}, the precision it was created "
              f"with, although precision auto is {resolved_precision(config.levels[0], config.device)} on this "
              "machine: its accuracies stay comparable", file=sys.stderr)
    config = prep.config  # `precision: auto` resolved to the study's precision
    jobs = resolve_jobs(config.jobs if jobs is None else jobs, config)
    if jobs > 1 and prep.store.location.kind == "sqlite" and prep.store.location.path is None:
        raise UserError("--jobs: worker processes need a storage they can share (a SQLite file, a journal file or a "
                        "database server), not an in-memory SQLite database")
    timeout_s = config.timeout_s if timeout_s is None else timeout_s
    deadline = None if timeout_s is None else time.perf_counter() + timeout_s
    store, study = prep.store, prep.study
    bar = Progress(prep.total, count_slots(study, FINISHED), progress)

    def write(*_: object) -> pd.DataFrame:
        return write_reports(store, study, prep.out_dir, config.objectives)

    try:
        if jobs == 1:
            heartbeats = store.location.heartbeats
            run_round(prep, worker_id, deadline, [write, bar], wait_for_others=heartbeats)
            run_levels(prep, worker_id, write, progress, wait_for_others=heartbeats,
                       requeue=store.location.kind == "sqlite")
            run_fidelity_check(prep, worker_id, write, progress, wait_for_others=heartbeats,
                               requeue=store.location.kind == "sqlite")
            run_seed_stage(prep, worker_id, write, progress, wait_for_others=heartbeats,
                           requeue=store.location.kind == "sqlite")
        else:
            Supervisor(prep, jobs, deadline, bar, write).run()
        if config.linearize is not None and worker_id == 0 and count_slots(study, FINISHED) >= prep.total:
            linearize_front(study, config, write(), prep.splits, config.levels[0], str(prep.out_dir))
        if config.measure is not None and worker_id == 0 and count_slots(study, FINISHED) >= prep.total:
            measure_front(study, config, write(), prep.splits, prep.out_dir)
    finally:
        bar.close()
        frame = write()
    if config.dashboard:
        write_dashboard(store.location.url, study=config.name, out=prep.out_dir / "dashboard.html")
    return RunResult(study, prep.out_dir, frame, time.perf_counter() - start, run_notes(store, study, frame))


@dataclass(frozen=True)
class WorkerJob:
    """What a spawned worker process needs (picklable): the study file as validated JSON, the space, the storage
    and run folder, its worker id, the total, seconds left, and torch threads (None: as the fidelity says)."""

    config: str
    space: dict
    space_source: str
    url: str
    out_dir: str
    worker_id: int
    total: int
    seconds_left: float | None
    threads: int | None


def work(job: WorkerJob) -> None:
    """Entry point of a worker process: open the study and run trials and promotions with the others; reports
    and progress are the supervisor's. Ctrl-C is the supervisor's to handle (it stops the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if job.threads is not None:
            torch.set_num_threads(job.threads)
        config = validate(StudyConfig, json.loads(job.config), "study file")
        space = SearchSpace.from_dict(job.space, source=job.space_source)
        prep = prepare_study(config, space, n_trials=job.total, storage=job.url, out_dir=job.out_dir,
                             worker_id=job.worker_id, child=True)
        deadline = None if job.seconds_left is None else time.perf_counter() + job.seconds_left
        run_round(prep, job.worker_id, deadline, [], wait_for_others=True)
        run_levels(prep, job.worker_id, lambda *_: None, False, wait_for_others=True, requeue=False)
        run_fidelity_check(prep, job.worker_id, lambda *_: None, False, wait_for_others=True, requeue=False)
        run_seed_stage(prep, job.worker_id, lambda *_: None, False, wait_for_others=True, requeue=False)
    except UserError as err:
        print(f"error: worker {job.worker_id}: {err}", file=sys.stderr)
        sys.exit(2)


def stage_progress(store: Store, study: optuna.Study, total: int) -> tuple[object, int, int, str | None]:
    """(signature, done, of, stage) of a study run by several processes: the signature changes whenever a trial of
    the study or of one of its stages (``store.family``) is queued or finishes (not when one starts); while the round
    is open, done = its finished slots of ``total`` and stage None; after it, the first stage with trials left
    (``level 1`` …, ``fidelity check``, ``seeds``): its trials that are not waiting or running, of all its trials."""
    family = store.family(study)
    trials = [s.get_trials(deepcopy=False) for s in family]
    signature = tuple((s.study_name, len(mine), tuple(sorted(Counter(t.state.name for t in mine
                                                                    if t.state in FINISHED).items())))
                      for s, mine in zip(family, trials))
    done = len(slot_holders(trials[0], FINISHED))  # count_slots on the trials read above
    if done < total:
        return signature, done, total, None
    name = study.study_name
    labels = {check_name(name): "fidelity check", seeds_name(name): VERDICT_STAGE,
              **{level_name(name, level): f"level {level}" for level in range(1, len(family))}}
    for stage, mine in zip(family[1:], trials[1:]):
        left = sum(t.state not in FINISHED for t in mine)
        if left:
            return signature, len(mine) - left, len(mine), labels[stage.study_name]
    return signature, done, total, None


class Supervisor:
    """Starts ``jobs`` worker processes on a prepared study, replaces those that die, writes the reports and
    shows progress until every worker has finished (module docstring)."""

    def __init__(self, prep: PreparedStudy, jobs: int, deadline: float | None, bar: Progress, write) -> None:
        self.prep, self.jobs, self.deadline, self.bar, self.write = prep, jobs, deadline, bar, write
        self.context = mp.get_context("spawn")  # fork would copy torch's and the storage's state
        self.live: dict[int, mp.Process] = {}
        self.started = 0
        self.replacements = jobs
        self.seen: object = None
        self.frame = prep.store.trials(prep.study)
        cores = physical_cores()
        threads = prep.config.levels[0].threads
        self.threads = None if threads is not None or prep.config.device != "cpu" else max(1, cores // jobs)

    def run(self) -> None:
        for _ in range(self.jobs):
            self.start()
        try:
            while self.live:
                time.sleep(POLL_S)
                self.reap()
                if not self.live and self.work_left():
                    self.replace()  # every worker ended but re-queued trials wait (a worker died late)
                self.refresh()
        except KeyboardInterrupt:
            for process in self.live.values():
                process.terminate()
            for process in self.live.values():
                process.join()
            self.live.clear()
            requeued = self.requeue()
            tqdm.write(f"interrupted: every worker stopped, {requeued} running trial(s) re-queued; the same command "
                       "resumes the study", file=sys.stderr)
            raise
        self.requeue()  # trials left RUNNING by a worker that died before it recorded its id

    def start(self) -> None:
        prep = self.prep
        left = None if self.deadline is None else self.deadline - time.perf_counter()
        job = WorkerJob(json.dumps(prep.config.model_dump(mode="json")), prep.space.to_dict(), prep.space.source,
                        prep.store.location.url, str(prep.out_dir), self.started, prep.total, left, self.threads)
        process = self.context.Process(target=work, args=(job,), name=f"pisearch-worker-{self.started}")
        process.start()
        self.live[self.started] = process
        self.started += 1

    def reap(self) -> None:
        """Forget workers that ended; re-queue the running trials of one that died and start its replacement."""
        for worker, process in list(self.live.items()):
            if process.exitcode is None:
                continue
            del self.live[worker]
            if process.exitcode != 0:
                requeued = self.requeue(worker)
                instead = self.replace()
                tqdm.write(f"worker {worker} stopped (exit code {process.exitcode}); {requeued} running trial(s) "
                           f"re-queued; {'no worker replaces it' if instead is None else f'worker {instead} started'}",
                           file=sys.stderr)

    def replace(self) -> int | None:
        """Start a worker in place of one that ended (at most ``jobs`` times, never past the deadline); its id."""
        if self.replacements > 0 and (self.deadline is None or time.perf_counter() < self.deadline):
            self.replacements -= 1
            self.start()
            return self.started - 1
        return None

    def requeue(self, worker: int | None = None) -> int:
        """Re-queue the RUNNING trials of ``worker`` (None: all of them; no worker is live) at every level."""
        only = None if worker is None else (lambda t: t.user_attrs.get(WORKER) == worker)
        store = self.prep.store
        return sum(store.requeue_dead(s, REQUEUED_ATTRS, only) for s in store.family(self.prep.study))

    def work_left(self) -> bool:
        prep = self.prep
        round_open = count_slots(prep.study, FINISHED) < prep.total
        return round_open or any(count_trials(s, WAITING) for s in prep.store.family(prep.study))

    def refresh(self) -> None:
        """Rewrite the reports when a trial finished or was queued in the study or any of its stages (promotion
        levels, fidelity check, seed runs); set the progress bar from the storage (:func:`stage_progress`)."""
        signature, done, total, desc = stage_progress(self.prep.store, self.prep.study, self.prep.total)
        if signature != self.seen:
            self.seen = signature
            self.frame = self.write()
        frame = self.frame
        measured = frame[pd.to_numeric(frame["accuracy"], errors="coerce").notna()]
        best = None
        if len(measured):
            row = measured.loc[pd.to_numeric(measured["accuracy"]).idxmax()]
            best = (float(row["accuracy"]), float(row["relus"]))
        self.bar.show(done, total, best, desc)
