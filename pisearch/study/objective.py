"""One trial: sample (or take) a spec, cost it exactly, reject it untrained if over budget, else proxy-train it."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from functools import partial

import optuna
from optuna.trial import TrialState
from torch import nn

from pisearch import __version__
from pisearch.cost import count, estimate
from pisearch.data import Splits
from pisearch.space import SearchSpace
from pisearch.spec import ArchSpec
from pisearch.study.artifacts import WEIGHTS_ATTR, fetch_weights, store_weights
from pisearch.study.cost_sampler import CostAwareSampler
from pisearch.study.slots import DUPLICATE, OVER_BUDGET, holds_no_slot, redrawn
from pisearch.study.store import OUTSIDE_MEASURED, OUTSIDE_SPACE, measured_outside
from pisearch.study.config import StudyConfig
from pisearch.train import Fidelity, resolved_precision, seeded_build, train_proxy

CONSTRAINT_KEY = "relu_budget"  # > 0: ReLUs outside the budget window (feasible when ≤ 0)
MACS_KEY = "macs_budget"        # > 0: MACs above budget.max_macs
TARGET_BIN = "target_bin"       # the ReLU bin (budget.bins) a sampled trial was aimed at
TRAIN_SEED = "train_seed"       # a trial trained with this seed instead of its level's (compare: seeds)
CANDIDATE_ATTRS = ("source", "label", "budget", "spec")  # what an enqueued trial carries to name its candidate
DIVERGED = "diverged"  # True on a trial that diverged after its retry (a final result: training is deterministic)
WARM_WEIGHTS = "warm_start_weights"  # artifact id of the weights a promoted trial starts from (level below)
WARM_EPOCHS = "warm_start_epochs"    # epochs those weights were trained for (0: trained from scratch after all)
WORKER = "worker"  # the worker (sampler seed offset, process of `run --jobs`) that ran the trial
PRECISION_ATTR = "precision"  # fp32 | bf16: what a trial trained in; on the study: what its `auto` fidelities use
VERSION_ATTR = "pisearch_version"  # the pisearch that ran a trial (on the study: the one that created it)
SEARCHED = ("search", "seed")  # the search's side: sampled trials and the designs it was seeded with
MAX_REDRAWS = 10  # consecutive re-drawn trials after which a sampled duplicate's result is reused (optuna #3400)
#                   and a sampled over-budget design keeps its slot
TWIN_POLL_S = 2.0  # how often a trial looks whether the running twin it waits for has finished


class TrialDiverged(RuntimeError):
    """The proxy trainer diverged twice (the trainer already retried at a lower learning rate)."""


class DuplicateDesign(RuntimeError):
    """A sampled trial re-made a design measured at the same fidelity: failed untrained, its slot re-drawn."""


class OutsideSpace(RuntimeError):
    """A baseline outside the space was measured: its trial ends FAIL so that no sampler observes it."""


class _QuietRedraws(logging.Filter):
    """Drops Optuna's two warnings (one with a traceback) about a trial failed on purpose (:class:`DuplicateDesign`,
    :class:`OutsideSpace`): the trial's ``reason`` says what happened."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and isinstance(record.exc_info[1], (DuplicateDesign, OutsideSpace)):
            self.dropped.add(text.split(" failed", 1)[0])  # "Trial N"
            return False
        head = text.split(" failed", 1)[0]
        if head in self.dropped and text.endswith("failed with value None."):
            self.dropped.discard(head)
            return False
        return True


logging.getLogger("optuna.study._optimize").addFilter(_QuietRedraws())


def cost_metrics(spec: ArchSpec, config: StudyConfig) -> dict[str, float]:
    """Exact cost of ``spec`` (relus, relus_b, polys, macs, params per image) plus the protocol estimates
    ``latency_ms`` / ``comm_mb`` of the study's protocol and network."""
    cost = count(spec)
    metrics: dict[str, float] = {k: v for k, v in cost.to_dict(tables=False).items() if k != "stage_relus"}
    est = estimate(cost, config.protocol.name, config.protocol.network).to_dict()
    metrics["latency_ms"], metrics["comm_mb"] = est["latency_ms"], est["comm_mb"]
    return metrics


def record_spec(trial: optuna.Trial, spec: ArchSpec, source: str, metrics: dict[str, float]) -> None:
    """The user attrs every trial carries: source, spec JSON, hash, summary, its cost ``metrics`` and the version of
    the pisearch that ran it."""
    trial.set_user_attr("source", source)
    trial.set_user_attr(VERSION_ATTR, __version__)
    trial.set_user_attr("spec", spec.to_json())
    trial.set_user_attr("spec_hash", spec.hash)
    trial.set_user_attr("summary", spec.summary())
    for key, value in metrics.items():
        trial.set_user_attr(key, value)


def holds_result(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial stands for its candidate (a baseline, a promotion): waiting, running, complete, or diverged
    (a final result). An interrupted, crashed or stale trial does not: its candidate is enqueued again."""
    return trial.state in (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE) or (
        trial.state == TrialState.FAIL and (bool(trial.user_attrs.get(DIVERGED)) or measured_outside(trial)))


def budget_violation(relus: int, window: tuple[int | None, int | None]) -> int:
    """ReLUs by which ``relus`` lies outside ``window`` (0 when inside)."""
    low, high = window
    if high is not None and relus > high:
        return relus - high
    if low is not None and relus < low:
        return low - relus
    return 0


def redraws_before(trial: optuna.Trial) -> int:
    """Re-drawn trials (duplicates and over-budget designs, :data:`~pisearch.study.slots.REDRAWN`) directly before
    ``trial`` in trial order: a sampler that keeps re-making measured designs gets its duplicate accepted (result
    reused), and one that keeps leaving the budget its over-budget design recorded as a trial, after
    :data:`MAX_REDRAWS` of them."""
    run = 0
    for t in sorted(trial.study.get_trials(deepcopy=False), key=lambda t: -t.number):
        if t.number >= trial.number or t.state == TrialState.RUNNING:
            continue
        if not redrawn(t.user_attrs.get("reason", "")):
            break
        run += 1
    return run


def join_generation(trial: optuna.Trial) -> None:
    """Make an enqueued seed a member of a genetic sampler's current generation, so it can be a parent. NSGA-II
    (Optuna 5.0) gives a trial its generation only when it samples the trial's parameters (``sample_relative``),
    never for a trial whose every parameter was enqueued, and it breeds only from trials with a generation: seeds
    left out were never parents, and a seeded study was its seeds plus random draws. Asked here
    (``BaseGASampler.get_trial_generation``), the seeds join generation 0 while it has room, and the sampled
    trials after them are bred from them."""
    sampler = trial.study.sampler
    if isinstance(sampler, optuna.samplers.BaseGASampler):
        frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
        sampler.get_trial_generation(trial.study, frozen)


@dataclass
class TrialRunner:
    """Callable objective for ``study.optimize``: everything a trial needs, loaded once per process."""

    config: StudyConfig
    space: SearchSpace
    splits: Splits
    fidelity: Fidelity
    run_dir: str
    level: int = 0
    warm_epochs: int | None = None  # epochs of the level below, when promoted trials warm-start from its weights
    worker_id: int = 0  # recorded on each trial (a supervisor re-queues the trials of a worker that died)

    def spec_for(self, trial: optuna.Trial) -> ArchSpec:
        """The trial's spec: carried by an enqueued baseline or re-run, else sampled. In the study itself (level 0)
        a carried spec's trial still samples its enqueued parameters (the space's encoding of that spec), so the
        sampler learns from every trial."""
        proposed = "spec" not in trial.user_attrs and "source" not in trial.user_attrs and self._propose(trial)
        window = None if proposed else self._window(trial)
        sample = partial(self.space.sample, trial, num_classes=self.splits.train.num_classes,
                         in_channels=self.splits.train.x.shape[1], window=window)
        if "spec" not in trial.user_attrs:
            spec = sample()
            if trial.user_attrs.get("source") == "seed":  # enqueued as parameters (candidates.seeds)
                join_generation(trial)
            return spec
        if self.level == 0 and TRAIN_SEED not in trial.user_attrs and OUTSIDE_SPACE not in trial.user_attrs:
            sample()
        return ArchSpec.from_json(trial.user_attrs["spec"], source=f"trial {trial.number} spec")

    def _propose(self, trial: optuna.Trial) -> bool:
        """Let a sampler that chooses whole designs (``cost_ehvi``) choose this trial's: whether it did (then the
        trial samples the design's parameters, not a ReLU bin)."""
        sampler = trial.study.sampler
        if not isinstance(sampler, CostAwareSampler):
            return False
        cost = next((o for o in self.config.objectives if o != "accuracy"), "relus")  # the first cost objective
        draw = partial(self.space.draw, num_classes=self.splits.train.num_classes,
                       in_channels=self.splits.train.x.shape[1])
        return sampler.propose(trial.study, trial.number, draw, lambda spec: cost_metrics(spec, self.config)[cost])

    def _window(self, trial: optuna.Trial) -> tuple[int, int] | None:
        """The ReLU bin (``budget.bins``) a trial samples in: its recorded one (a re-run), else for a trial the
        sampler draws the bin with the fewest slot-holding trials aimed at it so far (so a re-draw aims where its
        re-drawn trial did); None without bins or for enqueued designs."""
        bins = self.space.bins()
        target = trial.user_attrs.get(TARGET_BIN)
        if bins and target is None and "source" not in trial.user_attrs:
            aimed = [t.user_attrs.get(TARGET_BIN) for t in trial.study.get_trials(deepcopy=False)
                     if not holds_no_slot(t)]  # this trial included (no bin yet): ties go round in turn
            target = min(range(len(bins)), key=lambda b: (aimed.count(b), (b - len(aimed)) % len(bins)))
            trial.set_user_attr(TARGET_BIN, target)
        return bins[target] if bins and target is not None else None

    def fidelity_of(self, trial: optuna.Trial) -> Fidelity:
        """The level's fidelity, with the trial's ``train_seed`` when it carries one."""
        seed = trial.user_attrs.get(TRAIN_SEED)
        return self.fidelity if seed is None else self.fidelity.model_copy(update={"seed": seed})

    def fidelity_json(self, trial: optuna.Trial) -> str:
        return json.dumps(self.fidelity_of(trial).model_dump(mode="json"), sort_keys=True)

    def measured_before(self, trial: optuna.Trial, spec: ArchSpec,
                        wait: bool = True) -> optuna.trial.FrozenTrial | None:
        """An earlier COMPLETE trial of this study that trained the same spec at the same fidelity from the same
        start (and kept its weights, if this study keeps weights). Training is deterministic, so its result is
        this trial's. While a lower-numbered twin is still running (another worker), wait for it, or with
        ``wait=False`` return that RUNNING twin."""
        start = [self.warm_weights(trial), self.warm_epochs]
        start = start if start[0] is not None else [None, None]
        fidelity = self.fidelity_json(trial)

        def twin(t: optuna.trial.FrozenTrial) -> bool:
            a = t.user_attrs
            return (a.get("spec_hash") == spec.hash and a.get("fidelity") == fidelity
                    and [a.get(k) for k in (WARM_WEIGHTS, WARM_EPOCHS)] == start)

        while True:
            trials = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
            for t in trials:
                if (t.state == TrialState.COMPLETE and twin(t) and "accuracy" in t.user_attrs
                        and (WEIGHTS_ATTR in t.user_attrs or not self.config.stores_weights)):
                    return t
            running = [t for t in trials if t.state == TrialState.RUNNING and t.number < trial.number and twin(t)]
            if not running or not wait:
                return running[0] if running else None
            time.sleep(TWIN_POLL_S)

    def warm_weights(self, trial: optuna.Trial) -> str | None:
        """Artifact id of the weights ``trial`` warm-starts from (None: it trains from scratch)."""
        return trial.user_attrs.get(WARM_WEIGHTS) if self.warm_epochs is not None else None

    def start_model(self, trial: optuna.Trial, spec: ArchSpec) -> tuple[nn.Module, Fidelity]:
        """The model a trial trains and the fidelity it trains with: the seeded initial weights and the level's
        fidelity, or, for a promotion carrying ``warm_start_weights``, those weights and the epochs this level
        adds to the level below. Unreadable weights fall back to training from scratch (reason recorded)."""
        fidelity = self.fidelity_of(trial)
        model = seeded_build(spec, fidelity)
        artifact = self.warm_weights(trial)
        if artifact is None:
            return model, fidelity
        try:
            model.load_state_dict(fetch_weights(artifact, self.run_dir))
            epochs = self.warm_epochs
        except Exception as err:  # noqa: BLE001 — missing, corrupt or mismatched weights: train from scratch
            trial.set_user_attr("reason", f"warm start: weights {artifact} unreadable ({type(err).__name__}); "
                                "trained from scratch")
            model, epochs = seeded_build(spec, fidelity), 0
        trial.set_user_attr(WARM_EPOCHS, epochs)
        return model, fidelity.model_copy(update={"epochs": fidelity.epochs - epochs})

    def __call__(self, trial: optuna.Trial) -> list[float]:
        trial.set_user_attr(WORKER, self.worker_id)
        sampled = "spec" not in trial.user_attrs  # a design the sampler chose now (not a baseline, seed or re-run)
        spec = self.spec_for(trial)
        source = trial.user_attrs.get("source", "search")
        metrics = cost_metrics(spec, self.config)
        record_spec(trial, spec, source, metrics)
        window, max_macs = self.space.budget, self.space.max_macs  # the study's budget is merged into the space's
        violation = budget_violation(int(metrics["relus"]), window)
        macs_over = 0 if max_macs is None else max(0, int(metrics["macs"]) - max_macs)
        if window != (None, None) or max_macs is not None:
            trial.set_constraint(CONSTRAINT_KEY, float(violation))
            trial.set_constraint(MACS_KEY, float(macs_over))
        trial.set_user_attr("feasible", violation == 0 and macs_over == 0)

        def values(accuracy: float) -> list[float]:
            return [accuracy if o == "accuracy" else metrics[o] for o in self.config.objectives]

        redraw = sampled and source == "search" and self.level == 0 and redraws_before(trial) < MAX_REDRAWS
        if (violation or macs_over) and source in SEARCHED:
            why = (f"{int(metrics['relus']):,} ReLUs outside budget {window}" if violation else
                   f"{int(metrics['macs']):,} MACs above max_macs {max_macs:,}")
            # costed exactly before training: the sampler learns the constraint, the slot goes to a new draw
            trial.set_user_attr("reason", f"{OVER_BUDGET}: {why}; re-drawn, not trained (holds no slot)" if redraw
                                else f"{why}: not trained")
            return values(0.0)
        trial.set_user_attr("level", self.level)
        trial.set_user_attr("fidelity", self.fidelity_json(trial))
        done = self.measured_before(trial, spec, wait=not redraw)  # a re-draw does not wait for a running twin
        if redraw and done is not None:
            doing = "is training" if done.state == TrialState.RUNNING else "measured"
            trial.set_user_attr("reason", f"{DUPLICATE}: trial {done.number} {doing} it at this fidelity; re-drawn, "
                                "not trained (holds no slot)")
            raise DuplicateDesign(f"trial {trial.number} re-made trial {done.number}'s design")
        if done is not None:
            trial.set_user_attr("reused_from", done.number)
            trial.set_user_attr("train_seconds", 0.0)
            trial.set_user_attr("accuracy_per_epoch", done.user_attrs.get("accuracy_per_epoch", []))
            trial.set_user_attr("accuracy", done.user_attrs["accuracy"])
            for key in (WEIGHTS_ATTR, WARM_EPOCHS, PRECISION_ATTR):
                if key in done.user_attrs:
                    trial.set_user_attr(key, done.user_attrs[key])
            return values(done.user_attrs["accuracy"])
        model, fidelity = self.start_model(trial, spec)
        trial.set_user_attr(PRECISION_ATTR, resolved_precision(fidelity, self.config.device))
        result = train_proxy(model, self.splits.train, self.splits.val, fidelity, device=self.config.device)
        trial.set_user_attr("train_seconds", round(result.train_seconds, 3))
        trial.set_user_attr("images_per_second", round(result.images_per_second, 1))
        trial.set_user_attr("retried", result.retried)
        trial.set_user_attr("accuracy_per_epoch", [round(a, 5) for a in result.accuracy_per_epoch])
        if result.status != "ok":
            trial.set_user_attr("reason", result.reason)
            trial.set_user_attr(DIVERGED, True)
            raise TrialDiverged(result.reason)
        trial.set_user_attr("accuracy", result.accuracy)
        if self.config.stores_weights:
            store_weights(trial, model, self.run_dir)
        if OUTSIDE_SPACE in trial.user_attrs and self.level == 0:
            trial.set_user_attr("reason", OUTSIDE_MEASURED)  # last: the mark of a finished measurement
            raise OutsideSpace(trial.user_attrs[OUTSIDE_SPACE])
        return values(result.accuracy)
