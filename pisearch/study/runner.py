"""Create or resume an Optuna study from a study file and run trials until its total is reached."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState
from tqdm.auto import tqdm

from pisearch.config import validate
from pisearch.data import Splits, load_dataset
from pisearch.errors import UserError
from pisearch.rules import deepreshape_rule
from pisearch.space import SearchSpace
from pisearch.spec import net
from pisearch.study.config import StudyConfig
from pisearch.study.dashboard_data import write_dashboard
from pisearch.study.linearize_stage import linearize_front
from pisearch.study.objective import CANDIDATE_ATTRS, WARM_WEIGHTS, TrialDiverged, TrialRunner, holds_result
from pisearch.study.promotion import Callback, enqueue_band, train_waiting
from pisearch.study.records import write_reports
from pisearch.study.store import PARENT, Store, default_location, read_study

FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
TAKEN = (*FINISHED, TrialState.RUNNING)  # trials that hold one of the study's n_trials slots
WAITING = (TrialState.WAITING,)  # enqueued, not started (promotions waiting for a worker)
REQUEUED_ATTRS = (*CANDIDATE_ATTRS, PARENT, WARM_WEIGHTS)  # what a re-queued trial keeps
SURPLUS = "surplus"  # reason prefix of a trial that lost the race for the last slot
WAIT_POLL_S = 2.0  # a worker without a free slot looks this often whether the other workers' trials ended
# Keys of the study file that may change between runs of one study (everything else must match on resume).
RESUMABLE_KEYS = ("n_trials", "timeout_s", "storage", "dashboard", "device", "keep_weights", "linearize",
                  "promotion")  # promotion settings apply to the promotions not made yet


def make_sampler(config: StudyConfig, space: SearchSpace, worker_id: int = 0) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded from the study seed (and a worker id, so workers sample differently)."""
    seed = (config.sampler.seed if config.sampler.seed is not None else config.seed) + 10_007 * worker_id
    name = config.sampler.name
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=config.sampler.population_size, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.GridSampler(space.grid(), seed=seed)


def _config_identity(config: StudyConfig, space: SearchSpace) -> dict:
    data = config.model_dump(mode="json", exclude=set(RESUMABLE_KEYS))
    data["space"] = space.to_dict()
    return data


def _pairs(old: dict, new: dict):
    """(key, (old value, new value)) for every key of either identity, keys that may change left out (studies
    stored by an older pisearch may still list some of them)."""
    return ((k, (old.get(k), new.get(k))) for k in set(old) | set(new) if k not in RESUMABLE_KEYS)


def open_store(config: StudyConfig, url: str) -> Store:
    """The storage at ``url`` opened for running the study: the study file's heartbeat settings (servers), and
    trials whose process died re-queued with the attrs that name their candidate."""
    return Store.open(url, keep_attrs=REQUEUED_ATTRS, heartbeat_interval_s=config.storage.heartbeat_interval_s,
                      grace_period_s=config.storage.grace_period_s)


def open_study(config: StudyConfig, space: SearchSpace, store: Store, worker_id: int = 0) -> optuna.Study:
    """Create the study in ``store`` or load it; a stored study with another configuration is a name clash. A
    new study stores the config and the validated space as the user attrs ``config`` and ``space`` (JSON), so a
    worker needs nothing but the storage URL and the study name."""
    study = store.create(config.name, config.directions, make_sampler(config, space, worker_id))
    identity = json.dumps(_config_identity(config, space), sort_keys=True)
    stored = study.user_attrs.get("config_identity")
    if stored is None:
        study.set_user_attr("config_identity", identity)
        study.set_user_attr("config", json.dumps(config.model_dump(mode="json"), sort_keys=True))
        study.set_user_attr("space", json.dumps(space.to_dict(), sort_keys=True))
    elif diff := sorted(k for k, (o, n) in _pairs(json.loads(stored), json.loads(identity)) if o != n):
        raise UserError(f"study name clash: storage {store.location.label} already holds a study {config.name!r} "
                        f"with a different configuration (differs in: {', '.join(diff)}); rename the study or use "
                        f"another storage")
    if [d.name.lower() for d in study.directions] != config.directions:
        raise UserError(f"study name clash: stored study {config.name!r} has other objective directions")
    return study


def baseline_trials(config: StudyConfig, num_classes: int, in_channels: int, resolution: int) -> list[dict]:
    """User attrs (source, label, spec JSON, budget) of the study's baselines: DeepReShape rule points and named
    nets. Built before the storage is touched, so a budget the rule cannot meet leaves the storage unchanged."""
    jobs: list[tuple[str, str, int | None, object]] = []
    if config.baselines.deepreshape is not None:
        for i, budget in enumerate(config.baselines.deepreshape.budgets):
            try:
                spec = deepreshape_rule(budget, resolution=resolution, num_classes=num_classes)
            except UserError as err:
                raise UserError(f"study {config.name!r}: baselines.deepreshape.budgets[{i}]: {err}") from None
            jobs.append(("rule", f"deepreshape@{budget}", budget, spec))
    for name in config.baselines.nets:
        jobs.append(("net", name, None, net(name, resolution=resolution, num_classes=num_classes)))
    trials = []
    for source, label, budget, spec in jobs:
        if spec.in_channels != in_channels:
            spec = replace(spec, in_channels=in_channels)
        attrs = {"source": source, "label": label, "spec": spec.to_json()}
        if budget is not None:
            attrs["budget"] = budget
        trials.append(attrs)
    return trials


def enqueue_baselines(study: optuna.Study, baselines: list[dict]) -> int:
    """Enqueue each baseline (user attrs from :func:`baseline_trials`) that no trial of the study holds yet
    (:func:`holds_result`): once per study, and again after a crash or Ctrl-C cut its trial short. Returns how
    many were enqueued."""
    held = {tuple(t.user_attrs.get(k) for k in CANDIDATE_ATTRS) for t in study.get_trials(deepcopy=False)
            if holds_result(t)}
    todo = [attrs for attrs in baselines if tuple(attrs.get(k) for k in CANDIDATE_ATTRS) not in held]
    for attrs in todo:
        study.enqueue_trial({}, user_attrs=attrs)
    return len(todo)


def count_trials(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def holds_slot(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial holds one of the study's n_trials slots (a surplus trial, pruned untrained, does not)."""
    return not (trial.state == TrialState.PRUNED and str(trial.user_attrs.get("reason", "")).startswith(SURPLUS))


def count_slots(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    """Trials in ``states`` that hold a slot: the round is complete when ``count_slots(study, FINISHED)`` reaches
    the total (counting a surplus trial there once let a worker stop while another's last trial still ran)."""
    return sum(holds_slot(t) for t in study.get_trials(deepcopy=False, states=states))


@dataclass
class RunResult:
    study: optuna.Study
    out_dir: Path
    trials: pd.DataFrame
    wall_seconds: float


class _Progress:
    """tqdm bar: trials done of the total, best accuracy so far (with its ReLUs), ETA."""

    def __init__(self, total: int, done: int, enabled: bool, desc: str | None = None) -> None:
        self.bar = tqdm(total=total, initial=done, unit="trial", disable=not enabled, dynamic_ncols=True, desc=desc)
        self.best: tuple[float, int] | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        acc = trial.user_attrs.get("accuracy")
        if acc is not None and (self.best is None or acc > self.best[0]):
            self.best = (acc, int(trial.user_attrs.get("relus", 0)))
        if self.best:
            self.bar.set_postfix_str(f"best acc {self.best[0]:.3f} @ {self.best[1]:,} ReLUs")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


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
                  storage: str | None = None, out_dir: str | Path | None = None,
                  worker_id: int = 0) -> PreparedStudy:
    """Check everything the study needs (space, dataset, baselines) and only then create or load it in its
    storage (``storage``, else the file's, else ``sqlite:///<out_dir>/study.db``), re-queue trials of a dead
    single-process run (SQLite), enqueue the baselines once and store the total (``n_trials``, else the file's)
    as the study's user attr ``n_trials``. ``space``: a search space or the path of its file."""
    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    space = space.with_budget(config.budget.min_relus, config.budget.max_relus)
    resolution = config.dataset.resolution or space.resolution
    splits = load_dataset(config.dataset.name, root=config.dataset.root, resolution=resolution,
                          channels=config.dataset.channels, val_fraction=config.dataset.val_fraction,
                          split_seed=config.dataset.split_seed, download=config.dataset.download)
    baselines = baseline_trials(config, splits.train.num_classes, splits.train.x.shape[1], resolution)
    out_dir = Path(out_dir) if out_dir else Path("runs") / config.name
    url = storage or config.storage.url
    if url is None:  # the default SQLite file lives in the run folder
        out_dir.mkdir(parents=True, exist_ok=True)
        url = default_location(out_dir).url
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = open_store(config, url)
    study = open_study(config, space, store, worker_id)
    if store.location.kind == "sqlite":
        store.requeue_dead(study, REQUEUED_ATTRS)
    enqueue_baselines(study, baselines)
    total = n_trials or config.n_trials
    study.set_user_attr("n_trials", total)
    return PreparedStudy(study, config, space, splits, store, out_dir, total)


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


def promote_level(runner: TrialRunner, store: Store, config: StudyConfig, on_trial: Callback,
                  progress: bool) -> None:
    """Promote the band of level ``runner.level − 1`` to ``runner.level`` and train it, until no band parent is
    left without a level trial holding it (a promotion another worker dropped is taken over). SQLite: promotions
    left RUNNING by a dead run are re-queued; server storages: wait for other workers' promotions to end."""
    server = store.location.heartbeats
    wait_s = min(WAIT_POLL_S, config.storage.heartbeat_interval_s) if server else None
    while True:
        level_study, added = enqueue_band(runner, store, config.name, runner.level, config.promotion.epsilon,
                                          config.directions)
        if store.location.kind == "sqlite":
            added += store.requeue_dead(level_study, REQUEUED_ATTRS)
        waiting = count_trials(level_study, WAITING)
        if not (added or waiting or (server and count_trials(level_study, (TrialState.RUNNING,)))):
            return
        bar = _Progress(waiting, 0, progress, f"level {runner.level}")
        try:
            train_waiting(runner, store, level_study, [on_trial, bar], wait_s=wait_s)
        finally:
            bar.close()


def run_study(config: StudyConfig, space: SearchSpace | str | Path, *, n_trials: int | None = None,
              timeout_s: float | None = None, storage: str | None = None, out_dir: str | Path | None = None,
              progress: bool = True, worker_id: int = 0) -> RunResult:
    """Launch or resume the study (see :func:`prepare_study`) and run trials until it holds ``n_trials``
    finished ones (all workers together; failed trials count) or for ``timeout_s`` seconds. Reports are
    rewritten after every trial, so nothing is lost on a crash.

    Workers share the total: a worker starts a trial only while finished + running trials are fewer than the
    total (if two take the last slot at once, the later trial ends PRUNED untrained, reason ``surplus``). On a
    storage with heartbeats (PostgreSQL, MySQL) a worker with no slot left waits for the other workers' trials
    to end or to go stale; a stale trial is failed and re-run once, in a free slot."""
    start = time.perf_counter()
    prep = prepare_study(config, space, n_trials=n_trials, storage=storage, out_dir=out_dir, worker_id=worker_id)
    study, total, out_dir = prep.study, prep.total, prep.out_dir
    timeout_s = timeout_s or config.timeout_s
    fidelities = config.levels
    runner = TrialRunner(config, prep.space, prep.splits, fidelities[0], str(out_dir))
    bar = _Progress(total, count_slots(study, FINISHED), progress)

    def objective(trial: optuna.Trial) -> list[float]:
        ahead = sum(t.number < trial.number and holds_slot(t) for t in study.get_trials(deepcopy=False, states=TAKEN))
        if ahead >= total:  # another worker took the last slot at the same moment: this one gives way
            trial.set_user_attr("reason", f"{SURPLUS}: all {total} trials of the study were taken; not trained")
            study.stop()
            raise optuna.TrialPruned()
        trial.set_user_attr("worker", worker_id)
        return runner(trial)

    store = prep.store

    def write(study: optuna.Study, _trial: optuna.trial.FrozenTrial | None = None) -> pd.DataFrame:
        return write_reports(store, study, out_dir, config.objectives)

    deadline = None if timeout_s is None else time.perf_counter() + timeout_s
    try:
        while True:
            left = None if deadline is None else deadline - time.perf_counter()
            taken = count_slots(study, TAKEN)
            if count_slots(study, FINISHED) >= total or (left is not None and left <= 0):
                break
            if taken < total:
                study.optimize(
                    objective, n_trials=total - taken, timeout=left, catch=(TrialDiverged,),
                    callbacks=[optuna.study.MaxTrialsCallback(total, states=TAKEN), write, bar],
                )
            elif store.location.heartbeats:  # the last trials run elsewhere: wait until they end or go stale
                time.sleep(min(WAIT_POLL_S, config.storage.heartbeat_interval_s))
                store.fail_stale(study)
            else:
                break
        if count_slots(study, FINISHED) >= total:  # the round is complete: promote it level by level
            for level, fidelity in enumerate(fidelities[1:], start=1):
                warm = fidelities[level - 1].epochs if config.promotion.warm_start else None
                level_runner = TrialRunner(config, prep.space, prep.splits, fidelity, str(out_dir), level=level,
                                           warm_epochs=warm)
                promote_level(level_runner, store, config, lambda *_: write(study), progress)
            if config.linearize is not None and worker_id == 0:
                linearize_front(study, config, write(study), prep.splits, fidelities[0], str(out_dir))
    finally:
        bar.close()
        frame = write(study)
    if config.dashboard:
        write_dashboard(store.location.url, study=config.name, out=out_dir / "dashboard.html")
    return RunResult(study, out_dir, frame, time.perf_counter() - start)
