"""One worker's part of a study: create or resume it in its storage, run the round's trials until the study holds
its total, and promote the front level by level (:mod:`pisearch.study.launch` runs one worker or several)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from pisearch import __version__
from pisearch.config import new_folder, validate
from pisearch.data import Splits, load_dataset
from pisearch.errors import UserError
from pisearch.space import SearchSpace
from pisearch.study.config import Ladder, StudyConfig
from pisearch.study.candidates import enqueue_once, enqueued_trials
from pisearch.study.objective import (CANDIDATE_ATTRS, PRECISION_ATTR, TARGET_BIN, VERSION_ATTR, WARM_WEIGHTS,
                                      DuplicateDesign, OutsideSpace, TrialDiverged, TrialRunner)
from pisearch.study.promotion import Callback, enqueue_band, train_waiting
from pisearch.study.samplers import WORKER_SEED_STRIDE, build_sampler
from pisearch.study.slots import FINISHED, SURPLUS, TAKEN, count_slots, holds_no_slot, slots_ahead
from pisearch.study.store import (CHECK_ATTR, OUTSIDE_SPACE, PARENT, Store, default_location, display_url,
                                  read_study, run_folder)
from pisearch.train import Fidelity, resolved_precision

WAITING = (TrialState.WAITING,)  # enqueued, not started (promotions waiting for a worker)
# what a re-queued trial keeps
REQUEUED_ATTRS = (*CANDIDATE_ATTRS, PARENT, WARM_WEIGHTS, TARGET_BIN, CHECK_ATTR, OUTSIDE_SPACE)
WAIT_POLL_S = 2.0  # a worker without a free slot looks this often whether the other workers' trials ended
# Keys of the study file that may change between runs of one study (everything else must match on resume).
RESUMABLE_KEYS = ("n_trials", "timeout_s", "storage", "dashboard", "device", "keep_weights", "linearize",
                  "promotion", "jobs", "compare", "fidelity_check", "measure")  # promotion, compare, check and
# measure settings apply to what is not done yet (a check added to a finished study runs on its next `pisearch run`)


def make_sampler(config: StudyConfig, space: SearchSpace, worker_id: int = 0) -> optuna.samplers.BaseSampler:
    """The configured sampler (:func:`~pisearch.study.samplers.build_sampler`), seeded from the study seed (and a
    worker id, so workers sample differently)."""
    s = config.sampler
    seed = (s.seed if s.seed is not None else config.seed) + WORKER_SEED_STRIDE * worker_id
    try:
        return build_sampler(s.name, s.options, seed, s.population_size, space.grid() if s.name == "grid" else None)
    except ValueError as err:
        raise UserError(f"study {config.name!r}: sampler: {err}") from None


def _config_identity(config: StudyConfig, space: SearchSpace) -> dict:
    data = config.model_dump(mode="json", exclude=set(RESUMABLE_KEYS))
    data["space"] = space.to_dict()
    return data


def _pairs(old: dict, new: dict):
    """(key, (old value, new value)) for every key of either identity, keys that may change left out (studies
    stored by an older pisearch may still list some of them, or lack keys added since: those read as defaults)."""
    defaults = {k: f.get_default(call_default_factory=True) for k, f in StudyConfig.model_fields.items()
                if not f.is_required()}
    defaults = {k: v.model_dump(mode="json") if hasattr(v, "model_dump") else v for k, v in defaults.items()}
    return ((k, (old.get(k, defaults.get(k)), new.get(k))) for k in set(old) | set(new) if k not in RESUMABLE_KEYS)


def open_store(config: StudyConfig, url: str) -> Store:
    """The storage at ``url`` opened for running the study: the study file's heartbeat settings (servers), and
    trials whose process died re-queued with the attrs that name their candidate."""
    return Store.open(url, keep_attrs=REQUEUED_ATTRS, heartbeat_interval_s=config.storage.heartbeat_interval_s,
                      grace_period_s=config.storage.grace_period_s)


def study_precision(study: optuna.Study, config: StudyConfig) -> Literal["fp32", "bf16"]:
    """The precision the study's ``precision: auto`` fidelities train in: the one recorded when the study was
    created (user attr ``precision``), else for a study stored by an older pisearch the one its stored config
    names, else level 0's (``auto`` resolved on this machine: :func:`~pisearch.train.resolved_precision`)."""
    recorded = study.user_attrs.get(PRECISION_ATTR)
    if recorded is None and "config" in study.user_attrs:
        recorded = json.loads(study.user_attrs["config"]).get("fidelity", {}).get("precision", "fp32")
    if recorded in ("fp32", "bf16"):
        return recorded
    return resolved_precision(config.levels[0], config.device)


def with_precision(config: StudyConfig, precision: Literal["fp32", "bf16"]) -> StudyConfig:
    """``config`` with ``precision: auto`` replaced by ``precision`` in level 0 and every level above it (explicit
    settings stay)."""
    def fix(f: Fidelity) -> Fidelity:
        return f.model_copy(update={"precision": precision}) if f.precision == "auto" else f

    ladder = Ladder(list(config.fidelities), [fix(f) for f in config.levels])
    return config.model_copy(update={"fidelity": fix(config.fidelity), "fidelities": ladder})


def _identity_at(identity: dict, precision: str) -> dict:
    """A config identity as compared on resume: level 0's ``precision: auto`` read as the study's precision (a study
    created with ``auto`` and one that named the precision it resolved to are the same study), and a training seed
    equal to the study seed, or 0, left out (older pisearch stored an unset ``fidelity.seed`` as 0; it meant the
    study seed)."""
    fidelity = dict(identity.get("fidelity") or {})
    if fidelity.get("precision", "auto") == "auto":
        fidelity["precision"] = precision
    if fidelity.get("seed", 0) in (0, identity.get("seed", 0)):
        fidelity.pop("seed", None)
    return {**identity, "fidelity": fidelity}


def open_study(config: StudyConfig, space: SearchSpace, store: Store,
               worker_id: int = 0) -> tuple[optuna.Study, StudyConfig]:
    """Create the study in ``store`` or load it; a stored study with another configuration is a name clash. A
    new study stores the config (``precision: auto`` resolved on this machine) and the validated space as the user
    attrs ``config`` and ``space`` (JSON), so a worker needs nothing but the storage URL and the study name, and
    that precision as ``precision``. Returns the study and ``config`` with ``precision: auto`` replaced by the study's
    precision (:func:`study_precision`): a study resumed on a machine whose ``auto`` differs keeps training in the
    precision of its first trials, so their accuracies stay comparable."""
    study = store.create(config.name, config.directions, make_sampler(config, space, worker_id))
    precision = study_precision(study, config)
    resolved = with_precision(config, precision)
    identity = json.dumps(_identity_at(_config_identity(config, space), precision), sort_keys=True)
    stored = study.user_attrs.get("config_identity")
    if stored is None:
        study.set_user_attr("config_identity", identity)
        study.set_user_attr("config", json.dumps(resolved.model_dump(mode="json"), sort_keys=True))
        study.set_user_attr("space", json.dumps(space.to_dict(), sort_keys=True))
        study.set_user_attr(VERSION_ATTR, __version__)  # the pisearch that created the study
    elif diff := sorted(k for k, (o, n) in _pairs(_identity_at(json.loads(stored), precision),
                                                  json.loads(identity)) if o != n):
        raise UserError(f"study name clash: storage {store.location.label} already holds a study {config.name!r} "
                        f"with a different configuration (differs in: {', '.join(diff)}); rename the study or use "
                        f"another storage")
    if [d.name.lower() for d in study.directions] != config.directions:
        raise UserError(f"study name clash: stored study {config.name!r} has other objective directions")
    if PRECISION_ATTR not in study.user_attrs:
        study.set_user_attr(PRECISION_ATTR, precision)
    return study, resolved


def count_trials(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


class Progress:
    """tqdm bar: trials done of the total, best accuracy so far (with its ReLUs), ETA. As a study callback it
    counts this process's trials; :meth:`show` sets it from the storage (a supervisor of several processes)."""

    def __init__(self, total: int, done: int, enabled: bool, desc: str | None = None) -> None:
        self.bar = tqdm(total=total, initial=done, unit="trial", disable=not enabled, dynamic_ncols=True, desc=desc)
        self.best: tuple[float, int] | None = None
        self.desc, self.stage = desc, None

    def _better(self, accuracy: float | None, relus: float | None) -> None:
        if accuracy is not None and (self.best is None or accuracy > self.best[0]):
            self.best = (accuracy, int(relus or 0))
            self.bar.set_postfix_str(f"best acc {self.best[0]:.3f} @ {self.best[1]:,} ReLUs", refresh=False)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if holds_no_slot(trial):  # re-drawn (a duplicate or over budget): the slot is drawn again
            return
        self._better(trial.user_attrs.get("accuracy"), trial.user_attrs.get("relus"))
        self.bar.update(1)

    def show(self, done: int, total: int, best: tuple[float, float] | None, stage: str | None = None) -> None:
        """Set the bar to ``done`` of ``total`` with the best (accuracy, ReLUs) so far; a new ``stage`` (a label,
        None for the round) restarts the bar under that label."""
        if best is not None:
            self._better(*best)
        if stage != self.stage:
            self.stage = stage
            self.bar.reset(total=total)
            self.bar.set_description_str(stage or self.desc or "")
        self.bar.total = total
        if done != self.bar.n:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class StudyBusy(UserError):
    """Another pisearch command runs the study at ``url`` (or started it at the same moment) while this one came
    as worker 0, the id of the command that starts a study's run; the message advises ``pisearch run``, and
    ``pisearch create`` / ``pisearch worker`` put their own advice after :attr:`what`."""

    def __init__(self, url: str, name: str) -> None:
        self.url = display_url(url)  # password hidden
        self.what = f"{self.url}: another pisearch command is running study {name!r} there (or started it just now)"
        super().__init__(f"{self.what}; run this command again to join it as one more worker, or run one command "
                         "with --jobs N")


@dataclass
class PreparedStudy:
    """A study opened in its storage, with what its trials need (data loaded once per process)."""

    study: optuna.Study
    config: StudyConfig
    space: SearchSpace
    splits: Splits
    store: Store
    out_dir: Path
    total: int


def prepare_study(config: StudyConfig, space: SearchSpace | str | Path, *, n_trials: int | None = None,
                  storage: str | None = None, out_dir: str | Path | None = None, worker_id: int = 0,
                  child: bool = False) -> PreparedStudy:
    """Check everything the study needs (space, dataset, baselines) and only then create or load it in its
    storage (``storage``, else the file's, else ``sqlite:///<out_dir>/study.db``), re-queue trials of a dead
    single-process run (SQLite), enqueue the baselines once and store the total (``n_trials``, else the file's)
    as the study's user attr ``n_trials``. ``child``: a worker process started by a supervisor that did all of
    that already (it only opens the study, with its own sampler). ``space``: a search space or its file's path.
    Worker 0 (not a ``child``) is the process that starts a study's run: one that finds another process running the
    study on its file storage (:class:`~pisearch.study.store.Live`), or loses the race to make its new run folder,
    raises a one-line UserError (``pisearch run`` joins such a study as another worker id instead)."""
    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    space = space.with_budget(config.budget)
    if config.dataset.resolution not in (None, space.resolution):  # counts would be per the space's pixels
        raise UserError(f"study {config.name!r}: dataset.resolution: {config.dataset.resolution} differs from the "
                        f"search space's resolution {space.resolution} ({space.source}); its specs' ReLU counts and "
                        "MACs are per space-resolution image, so the two must be equal (or leave "
                        "dataset.resolution out)")
    out_dir = run_folder(config.name, out_dir)

    def load(run_dir: Path) -> tuple[Splits, list]:
        """The splits (a folder of your own images caches its decoded images in ``run_dir``) and the candidates."""
        splits = load_dataset(config.dataset.name, resolution=space.resolution, run_dir=run_dir,
                              **config.dataset.arguments())
        return splits, enqueued_trials(config, space, splits.train.num_classes, splits.train.x.shape[1])

    url = storage or config.storage.url
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    total = config.n_trials if n_trials is None else n_trials
    raced, loaded = False, None  # raced: another command made the new run folder while this one was making it
    if url is None:  # the default SQLite file lives in the run folder
        if not out_dir.exists():  # a new run folder appears whole (data cache, storage, queued baselines) or not
            try:
                with new_folder(out_dir) as tmp:
                    loaded = load(tmp)
                    _open_and_queue(config, space, default_location(tmp).url, worker_id, child, loaded[1],
                                    total)[0].close()
            except FileExistsError:
                raced = True
        url = default_location(out_dir).url
    splits, enqueued = loaded or load(out_dir)
    live = Store.attach(url)  # held until the store opened below holds it
    if not child and worker_id == 0 and (raced or (live is not None and live.others)):  # worker 0 is the first's
        raise StudyBusy(url, config.name)
    store, study, config = _open_and_queue(config, space, url, worker_id, child, enqueued, total)
    return PreparedStudy(study, config, space, splits, store, out_dir, total)


def _open_and_queue(config: StudyConfig, space: SearchSpace, url: str, worker_id: int, child: bool,
                    enqueued: list, total: int) -> tuple[Store, optuna.Study, StudyConfig]:
    """Open the study at ``url`` (:func:`open_study`: the study and its config at the study's precision) and, unless
    ``child``, re-queue a dead run's trials (SQLite), enqueue the candidates no trial holds yet and store the total:
    one process at a time (:meth:`Store.exclusive`), so two runs started at once on a new study enqueue its
    baselines once."""
    store = open_store(config, url)
    study, config = open_study(config, space, store, worker_id)
    if not child:
        with store.exclusive(f"pisearch enqueue {config.name}"):
            if store.location.kind == "sqlite":
                store.requeue_dead(study, REQUEUED_ATTRS)
            enqueue_once(study, enqueued)
            study.set_user_attr("n_trials", total)
    return store, study, config


def load_stored_study(storage: str, name: str) -> tuple[StudyConfig, SearchSpace, int]:
    """The config, search space and total (``n_trials``) of study ``name`` as ``pisearch run`` or ``pisearch
    create`` stored them in ``storage``: all that a worker on another machine needs."""
    stored = read_study(storage, name)
    attrs, source = stored.user_attrs, f"storage {stored.location.label}"
    if "config" not in attrs or "space" not in attrs:
        raise UserError(f"{source}: study {name!r} has no stored config (create it with pisearch create or "
                        f"pisearch run)")
    config = validate(StudyConfig, json.loads(attrs["config"]), f"{source} study {name!r} (config)")
    space = SearchSpace.from_dict(json.loads(attrs["space"]), source=f"{source} study {name!r} (space)")
    return config, space, int(attrs.get("n_trials", config.n_trials))


def run_round(prep: PreparedStudy, worker_id: int, deadline: float | None, callbacks: list[Callback],
              wait_for_others: bool) -> None:
    """Run level-0 trials until the study holds ``prep.total`` finished ones (all workers together) or the
    ``deadline`` (``time.perf_counter()`` seconds) passes.

    Workers share the total: a worker starts a trial only while slot-holding trials (:mod:`~pisearch.study.slots`)
    are fewer than the total; if two take the last slot at once, the later trial ends PRUNED untrained, reason
    ``surplus``. ``wait_for_others``: when every slot is taken but trials still run elsewhere, wait for them to
    end (a dead worker's trial is re-queued by heartbeat on servers, by the supervisor of ``--jobs``)."""
    study, total, store = prep.study, prep.total, prep.store
    runner = TrialRunner(prep.config, prep.space, prep.splits, prep.config.levels[0], str(prep.out_dir),
                         worker_id=worker_id)

    def objective(trial: optuna.Trial) -> list[float]:
        if slots_ahead(study, trial.number, trial.user_attrs) >= total:  # another worker took the last slot
            trial.set_user_attr("reason", f"{SURPLUS}: all {total} trials of the study were taken; not trained")
            study.stop()
            raise optuna.TrialPruned()
        return runner(trial)

    def stop_when_taken(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        if count_slots(study, TAKEN) >= total:
            study.stop()

    while True:
        left = None if deadline is None else deadline - time.perf_counter()
        taken = count_slots(study, TAKEN)
        if count_slots(study, FINISHED) >= total or (left is not None and left <= 0):
            return
        if taken < total:
            study.optimize(objective, n_trials=total - taken, timeout=left,
                           catch=(TrialDiverged, DuplicateDesign, OutsideSpace),
                           callbacks=[stop_when_taken, *callbacks])
        elif wait_for_others:  # the last trials run elsewhere: wait until they end or go stale
            time.sleep(min(WAIT_POLL_S, prep.config.storage.heartbeat_interval_s))
            store.fail_stale(study)
        else:
            return


def stage_wait_s(config: StudyConfig, wait_for_others: bool) -> float | None:
    """How often (seconds) a stage polls for trials other workers still run: the poll interval, or the storage's
    heartbeat interval where that is shorter; None when the stage does not wait for others."""
    return min(WAIT_POLL_S, config.storage.heartbeat_interval_s) if wait_for_others else None


def run_levels(prep: PreparedStudy, worker_id: int, on_trial: Callback, progress: bool, wait_for_others: bool,
               requeue: bool) -> None:
    """Promote the round's front level by level (``fidelities:``), once the round is complete. ``requeue``:
    promotions a dead run left RUNNING are re-queued (only where no other process may be running them)."""
    if count_slots(prep.study, FINISHED) < prep.total:
        return
    levels, config = prep.config.levels, prep.config
    wait_s = stage_wait_s(config, wait_for_others)
    for level, fidelity in enumerate(levels[1:], start=1):
        warm = levels[level - 1].epochs if config.promotion.warm_start else None
        runner = TrialRunner(config, prep.space, prep.splits, fidelity, str(prep.out_dir), level=level,
                             warm_epochs=warm, worker_id=worker_id)
        promote_level(runner, prep.store, config, on_trial, progress, wait_s, requeue)


def promote_level(runner: TrialRunner, store: Store, config: StudyConfig, on_trial: Callback, progress: bool,
                  wait_s: float | None, requeue: bool) -> None:
    """Promote the band of level ``runner.level − 1`` to ``runner.level`` and train it (:func:`train_stage`)."""
    def enqueue() -> tuple[optuna.Study, int]:
        return enqueue_band(runner, store, config.name, runner.level, config.promotion.epsilon, config.directions)

    train_stage(enqueue, runner, store, on_trial, progress, f"level {runner.level}", wait_s, requeue)


def train_stage(enqueue: Callable[[], tuple[optuna.Study, int]], runner: Callable[[optuna.Trial], list[float]],
                store: Store, on_trial: Callback, progress: bool, desc: str, wait_s: float | None, requeue: bool,
                identity: Sequence[str] = (PARENT,)) -> None:
    """Enqueue the candidates of an auxiliary study (a promotion level, the fidelity check) with ``enqueue`` (which
    returns the study and how many it enqueued) and train them with ``runner`` (:func:`train_waiting`), until
    no candidate is left without a trial holding it (one another worker dropped is taken over). ``requeue``:
    trials left RUNNING by a dead run are re-queued first; ``wait_s``: poll this often until trials other
    processes run have ended, so the stage is complete on return."""
    while True:
        stage_study, added = enqueue()
        if requeue:
            added += store.requeue_dead(stage_study, REQUEUED_ATTRS)
        waiting = count_trials(stage_study, WAITING)
        running = wait_s is not None and count_trials(stage_study, (TrialState.RUNNING,))
        if not (added or waiting or running):
            return
        bar = Progress(waiting, 0, progress, desc)
        try:
            train_waiting(runner, store, stage_study, [on_trial, bar], wait_s=wait_s, identity=identity)
        finally:
            bar.close()
