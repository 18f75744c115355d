"""``cost_ehvi``: a model-based sampler that uses what pisearch knows before training — every candidate's exact cost.

Optuna's samplers treat every objective as unknown and spend trials learning the ReLU count; here only accuracy is
modelled. The sampler draws a pool of designs from the space once per process (costing them is free: exact and
analytic), fits a Gaussian process (scikit-learn's ``GaussianProcessRegressor``: a well-kept, exact GP with
marginal-likelihood fitting of an ARD Matérn kernel) to the measured accuracies from features that include the exact
counts, and proposes the pool design with the highest expected hypervolume improvement in (accuracy, log10 of the
study's cost objective). The cost coordinate is exact, so the expectation is over accuracy alone and has a closed
form over the front's staircase.

* Observations: every COMPLETE measured trial of the study that carries a spec (searched, seeds, in-space
  baselines); trials running elsewhere are pending and enter the front at their predicted accuracy (kriging
  believer), so a second worker is steered away from the first one's design.
* A design any trial carries (spec hash: measured, running, waiting, failed or diverged) is never proposed again.
* Until ``n_startup_trials`` observations exist it answers like Optuna's ``RandomSampler`` and the study aims each
  trial at a ReLU bin as for any sampler.

The objective asks :meth:`CostAwareSampler.propose` before sampling a trial's parameters; the sampler then answers
each ``suggest_*`` with the proposed design's parameters, so the trial's params stay the space's fixed encoding.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import norm

from pisearch.cost import count
from pisearch.spec import ArchSpec
from pisearch.study.store import OUTSIDE_SPACE

Draw = Callable[[np.random.Generator], tuple[dict[str, Any], ArchSpec] | None]
MIN_STD = 1e-6  # accuracy units; keeps the closed-form expectation finite


def design_features(spec: ArchSpec, n_stages: int) -> np.ndarray:
    """What the surrogate sees of a design: log10 of its ReLUs, polynomial evaluations (+1), MACs and parameters,
    the stem width, and per stage (padded to ``n_stages``) log2 width, depth and log10 ReLUs / polys (+1)."""
    cost = count(spec)
    stage_polys: dict[str, int] = {}
    for site in cost.sites:
        stage_polys[site.stage] = stage_polys.get(site.stage, 0) + site.polys
    stage_relus = cost.stage_relus()
    row = [math.log10(cost.relus + 1), math.log10(cost.polys + 1), math.log10(cost.macs + 1),
           math.log10(cost.params + 1), math.log2(spec.stem.width or 1)]
    for i in range(n_stages):
        if i < len(spec.stages):
            st, label = spec.stages[i], f"stage{i + 1}"
            row += [math.log2(st.width), st.depth, math.log10(stage_relus.get(label, 0) + 1),
                    math.log10(stage_polys.get(label, 0) + 1)]
        else:
            row += [0.0, 0.0, 0.0, 0.0]
    return np.asarray(row, dtype=float)


def expected_improvement(front: np.ndarray, cost: np.ndarray, mean: np.ndarray, std: np.ndarray,
                         reference_cost: float) -> np.ndarray:
    """Expected hypervolume improvement of candidates at exact ``cost`` (log10 units, minimized) whose accuracy is
    normal(``mean``, ``std``) (maximized), over ``front`` (rows: accuracy, cost; any set of points), with reference
    point (accuracy 0, ``reference_cost``). Closed form: the region a candidate adds is a staircase of cost segments
    [c_k, c_k+1) above the best accuracy h_k at cost ≤ c_k, so EHVI = Σ_k (c_k+1 − c_k) · E[(A − h_k)⁺]."""
    std = np.maximum(std, MIN_STD)
    points = front[np.argsort(front[:, 1])] if len(front) else np.empty((0, 2))
    out = np.zeros(len(cost))
    for j, (c, mu, s) in enumerate(zip(cost, mean, std)):
        if c >= reference_cost:
            continue
        later = points[points[:, 1] > c]
        edges = np.concatenate([[c], later[:, 1], [reference_cost]])
        edges = np.minimum(edges, reference_cost)
        below = points[points[:, 1] <= c, 0]
        start = max(0.0, below.max()) if len(below) else 0.0  # the reference accuracy bounds the region below
        h = np.maximum.accumulate(np.concatenate([[start], later[:, 0]]))
        z = (mu - h) / s
        gain = (mu - h) * norm.cdf(z) + s * norm.pdf(z)
        out[j] = float(np.sum(np.diff(edges) * gain))
    return out


class CostAwareSampler(optuna.samplers.BaseSampler):
    """The ``cost_ehvi`` sampler (module docstring). ``pool_size``: designs drawn from the space once per process
    (fewer if the space has fewer distinct feasible ones); ``n_startup_trials``: observations before the model is
    used; ``n_restarts``: extra restarts of the GP's kernel fit. ``seed`` seeds the pool, the startup draws and the
    kernel fit."""

    def __init__(self, *, seed: int | None = None, pool_size: int = 2000, n_startup_trials: int = 8,
                 n_restarts: int = 1) -> None:
        if pool_size < 1 or n_startup_trials < 2 or n_restarts < 0:
            raise ValueError("pool_size must be ≥ 1, n_startup_trials ≥ 2 and n_restarts ≥ 0")
        self._seed, self._rng = seed, np.random.default_rng(seed)
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self.pool_size, self.n_startup_trials, self.n_restarts = pool_size, n_startup_trials, n_restarts
        self._pool: list[tuple[dict[str, Any], ArchSpec, float]] | None = None
        self._proposals: dict[int, dict[str, Any]] = {}
        self._feature_cache: dict[tuple[str, int], np.ndarray] = {}

    # ---- Optuna's sampler protocol: the proposed design's parameters, else random ---------------------------
    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        proposal = self._proposals.get(trial.number, {})
        if param_name in proposal:
            return proposal[param_name]
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: list[float] | None) -> None:
        self._proposals.pop(trial.number, None)

    # ---- proposals ----------------------------------------------------------------------------------------
    def propose(self, study: optuna.Study, number: int, draw: Draw, cost_of: Callable[[ArchSpec], float]) -> bool:
        """Choose trial ``number``'s design (its parameters then answer the trial's ``suggest_*``) and return True;
        False while there are fewer than ``n_startup_trials`` observations, or when every pool design is taken
        (the trial then samples at random). ``draw(rng)`` gives one random design of the space (parameters, spec)
        inside the study's budget, or None; ``cost_of(spec)`` its value of the study's cost objective."""
        seen = _observations(study, number)
        if len(seen.measured) < self.n_startup_trials:
            return False
        pool = self._pool_of(draw, cost_of)
        free = [i for i, (_, spec, _) in enumerate(pool) if spec.hash not in seen.taken]
        if not free:
            return False
        n_stages = max(len(spec.stages) for spec in [s for _, s, _ in pool] + [s for s, _ in seen.measured])
        features = partial(self._features, n_stages=n_stages)
        model = self._fit(np.array([features(spec) for spec, _ in seen.measured]),
                          np.array([accuracy for _, accuracy in seen.measured]))
        floor = min((c for _, _, c in pool if c > 0), default=1.0)  # log axis: a cost of 0 is drawn at the least

        def log_cost(spec: ArchSpec, cost: float | None = None) -> float:
            return math.log10(max(cost_of(spec) if cost is None else cost, floor))

        front = [(accuracy, log_cost(spec)) for spec, accuracy in seen.measured]
        if seen.pending:  # kriging believer: a running design at its predicted accuracy
            guess = model.predict(np.array([features(spec) for spec in seen.pending]))
            front += [(float(a), log_cost(spec)) for spec, a in zip(seen.pending, guess)]
        mean, std = model.predict(np.array([features(pool[i][1]) for i in free]), return_std=True)
        cost = np.array([log_cost(pool[i][1], pool[i][2]) for i in free])
        reference = math.log10(10 * max(floor, max(c for _, _, c in pool)))
        gain = expected_improvement(np.array(front), cost, mean, std, reference)
        self._proposals[number] = pool[free[int(np.argmax(gain))]][0]
        return True

    def _features(self, spec: ArchSpec, n_stages: int) -> np.ndarray:
        """:func:`design_features`, computed once per design and stage count (the pool is costed every proposal)."""
        key = (spec.hash, n_stages)
        if key not in self._feature_cache:
            self._feature_cache[key] = design_features(spec, n_stages)
        return self._feature_cache[key]

    def _pool_of(self, draw: Draw, cost_of: Callable[[ArchSpec], float]) -> list[tuple[dict, ArchSpec, float]]:
        """The pool: ``pool_size`` draws (those ``draw`` finds inside the budget), each design once, with its cost."""
        if self._pool is None:
            rng, seen, pool = np.random.default_rng(self._seed), set(), []
            for _ in range(self.pool_size):
                drawn = draw(rng)
                if drawn is not None and drawn[1].hash not in seen:
                    seen.add(drawn[1].hash)
                    pool.append((drawn[0], drawn[1], float(cost_of(drawn[1]))))
            self._pool = pool
        return self._pool

    def _fit(self, x: np.ndarray, y: np.ndarray):
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * Matern(np.ones(x.shape[1]), (1e-2, 1e3), nu=2.5)
                  + WhiteKernel(1e-2, (1e-6, 1e0)))
        model = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=self.n_restarts,
                                         random_state=int(self._rng.integers(2**31)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of the kernel fit on a handful of points
            model.fit((x - x.mean(axis=0)) / scale, y)
        return _Scaled(model, x.mean(axis=0), scale)


class _Scaled:
    """A fitted GP with its feature standardisation."""

    def __init__(self, model, shift: np.ndarray, scale: np.ndarray) -> None:
        self.model, self.shift, self.scale = model, shift, scale

    def predict(self, x: np.ndarray, return_std: bool = False):
        return self.model.predict((x - self.shift) / self.scale, return_std=return_std)


@dataclass
class _Seen:
    """What a study holds, as the sampler reads it: ``measured`` (spec, accuracy) of COMPLETE feasible trials with an
    accuracy, ``pending`` specs of RUNNING ones, and ``taken``: the hash of every design any trial carries (measured,
    running, waiting, failed or diverged, infeasible), none of which is proposed again."""

    measured: list[tuple[ArchSpec, float]] = field(default_factory=list)
    pending: list[ArchSpec] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)


def _observations(study: optuna.Study, number: int) -> _Seen:
    """:class:`_Seen` of the study's level-0 trials other than ``number``; outside-space baselines are neither
    observations nor taken (the space cannot make them)."""
    seen = _Seen()
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        if "spec" not in a or OUTSIDE_SPACE in a or t.number == number:
            continue
        spec = ArchSpec.from_json(a["spec"])
        seen.taken.add(spec.hash)
        if t.state == TrialState.COMPLETE and a.get("accuracy") is not None and a.get("feasible", True):
            seen.measured.append((spec, float(a["accuracy"])))
        elif t.state == TrialState.RUNNING:
            seen.pending.append(spec)
    return seen
