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

from pisearch.data import load_dataset
from pisearch.errors import UserError
from pisearch.rules import deepreshape_rule
from pisearch.space import SearchSpace
from pisearch.spec import net
from pisearch.study.config import StudyConfig
from pisearch.study.objective import TrialDiverged, TrialRunner
from pisearch.study.records import write_reports

FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
# Keys of the study file that may change between runs of one study (everything else must match on resume).
RESUMABLE_KEYS = ("n_trials", "timeout_s", "storage", "dashboard", "device", "keep_weights")


def default_storage(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / 'study.db').as_posix()}"


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


def open_study(config: StudyConfig, space: SearchSpace, storage: str, worker_id: int = 0) -> optuna.Study:
    """Create the study in ``storage`` or load it; a stored study with another configuration is a name clash."""
    try:
        study = optuna.create_study(
            study_name=config.name, storage=storage, directions=config.directions,
            sampler=make_sampler(config, space, worker_id), load_if_exists=True,
        )
    except (optuna.exceptions.StorageInternalError, ValueError, ImportError) as err:
        raise UserError(f"storage {storage}: cannot open ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    identity = json.dumps(_config_identity(config, space), sort_keys=True)
    stored = study.user_attrs.get("config_identity")
    if stored is None:
        study.set_user_attr("config_identity", identity)
        study.set_user_attr("config", json.dumps(config.model_dump(mode="json"), sort_keys=True))
    elif stored != identity:
        old, new = json.loads(stored), json.loads(identity)
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise UserError(f"study name clash: storage {storage} already holds a study {config.name!r} with a "
                        f"different configuration (differs in: {', '.join(diff)}); rename the study or use "
                        f"another storage")
    if [d.name.lower() for d in study.directions] != config.directions:
        raise UserError(f"study name clash: stored study {config.name!r} has other objective directions")
    return study


def requeue_stale(study: optuna.Study) -> int:
    """Mark RUNNING trials left by a dead single-process run as FAIL and enqueue them again (same spec and
    source); returns how many. Only for storages without heartbeats (SQLite, journal file)."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study._storage.set_trial_user_attr(t._trial_id, "reason", "interrupted: process ended mid-trial; re-queued")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        attrs = {k: t.user_attrs[k] for k in ("source", "spec", "label", "budget") if k in t.user_attrs}
        study.enqueue_trial(t.params, user_attrs=attrs)
    return len(stale)


def enqueue_baselines(study: optuna.Study, config: StudyConfig, num_classes: int, in_channels: int,
                      resolution: int) -> int:
    """Enqueue the study's baselines once (DeepReShape rule points, named nets) with their specs as attrs."""
    if study.user_attrs.get("baselines_enqueued"):
        return 0
    jobs: list[tuple[str, str, int | None, object]] = []
    if config.baselines.deepreshape is not None:
        for budget in config.baselines.deepreshape.budgets:
            spec = deepreshape_rule(budget, resolution=resolution, num_classes=num_classes)
            jobs.append(("rule", f"deepreshape@{budget}", budget, spec))
    for name in config.baselines.nets:
        jobs.append(("net", name, None, net(name, resolution=resolution, num_classes=num_classes)))
    for source, label, budget, spec in jobs:
        if spec.in_channels != in_channels:
            spec = replace(spec, in_channels=in_channels)
        attrs = {"source": source, "label": label, "spec": spec.to_json()}
        if budget is not None:
            attrs["budget"] = budget
        study.enqueue_trial({}, user_attrs=attrs)
    study.set_user_attr("baselines_enqueued", True)
    return len(jobs)


def n_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


@dataclass
class RunResult:
    study: optuna.Study
    out_dir: Path
    trials: pd.DataFrame
    wall_seconds: float


class _Progress:
    """tqdm bar: trials done of the total, best accuracy so far (with its ReLUs), ETA."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.bar = tqdm(total=total, initial=done, unit="trial", disable=not enabled, dynamic_ncols=True)
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


def run_study(config: StudyConfig, space_path: str | Path, *, n_trials: int | None = None,
              timeout_s: float | None = None, storage: str | None = None, out_dir: str | Path | None = None,
              progress: bool = True, worker_id: int = 0) -> RunResult:
    """Launch or resume the study; stops when the study holds ``n_trials`` finished trials (all processes
    together) or after ``timeout_s``. Reports are rewritten after every trial, so nothing is lost on a crash."""
    start = time.perf_counter()
    space = SearchSpace.load(space_path).with_budget(config.budget.min_relus, config.budget.max_relus)
    out_dir = Path(out_dir) if out_dir else Path("runs") / config.name
    out_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or config.storage or default_storage(out_dir)
    total = n_trials or config.n_trials
    timeout_s = timeout_s or config.timeout_s
    resolution = config.dataset.resolution or space.resolution
    splits = load_dataset(config.dataset.name, root=config.dataset.root, resolution=resolution,
                          channels=config.dataset.channels, val_fraction=config.dataset.val_fraction,
                          split_seed=config.dataset.split_seed, download=config.dataset.download)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(config, space, storage, worker_id)
    if storage.startswith("sqlite"):
        requeue_stale(study)
    enqueue_baselines(study, config, splits.train.num_classes, splits.train.x.shape[1], resolution)
    fidelity = config.fidelity
    if "seed" not in fidelity.model_fields_set:  # the study seed also seeds training unless fidelity says
        fidelity = fidelity.model_copy(update={"seed": config.seed})
    runner = TrialRunner(config, space, splits, fidelity, str(out_dir))
    done = n_finished(study)
    bar = _Progress(total, done, progress)

    def write(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        write_reports(study, out_dir, config.objectives)

    try:
        if done < total:
            study.optimize(
                runner, n_trials=total - done, timeout=timeout_s, catch=(TrialDiverged,),
                callbacks=[optuna.study.MaxTrialsCallback(total, states=FINISHED), write, bar],
            )
    finally:
        bar.close()
        frame = write_reports(study, out_dir, config.objectives)
    return RunResult(study, out_dir, frame, time.perf_counter() - start)
