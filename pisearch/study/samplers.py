"""The samplers a study file can name (``sampler: {name, options}``) and how one is built for a study's worker.

Optuna's multi-objective samplers by their short names, plus pisearch's cost-aware ``cost_ehvi``
(:mod:`pisearch.study.cost_sampler`). ``options`` are keyword arguments of the sampler's constructor, checked
against its signature when the study file is read; ``seed`` comes from the study (``sampler.seed``, else the study
seed, offset per worker), and constraints reach every sampler that reads them through ``trial.set_constraint``
(the objective records the ReLU window and MAC cap there), so neither is an option.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import optuna

from pisearch.study.cost_sampler import CostAwareSampler

SAMPLERS: dict[str, type[optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "gp": optuna.samplers.GPSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
    "nsga3": optuna.samplers.NSGAIIISampler,
    "random": optuna.samplers.RandomSampler,
    "qmc": optuna.samplers.QMCSampler,
    "grid": optuna.samplers.GridSampler,
    "cost_ehvi": CostAwareSampler,
}
SET_BY_STUDY = ("seed", "search_space", "constraints_func", "population_size")  # not options (module docstring)
WORKER_SEED_STRIDE = 10_007  # worker k's sampler seed = study seed + k × this (workers sample different points)


def sampler_options(name: str) -> list[str]:
    """The constructor keywords of sampler ``name`` that a study file may set in ``options``."""
    params = inspect.signature(SAMPLERS[name]).parameters
    return [p for p in params if p not in SET_BY_STUDY and params[p].kind != inspect.Parameter.VAR_KEYWORD]


def check_options(name: str, options: dict[str, Any]) -> None:
    """Raise ValueError naming the first option ``SAMPLERS[name]`` does not take (or that the study sets)."""
    known = sampler_options(name)
    for key in options:
        if key in SET_BY_STUDY:
            raise ValueError(f"{key!r} is set by the study, not an option (sampler.seed / the study seed, "
                             "sampler.population_size, the study's budget)")
        if key not in known:
            raise ValueError(f"unknown option {key!r} for {name} ({SAMPLERS[name].__name__}; known: "
                             f"{', '.join(known)})")


def build_sampler(name: str, options: dict[str, Any], seed: int, population_size: int,
                  grid: dict[str, list] | None = None) -> optuna.samplers.BaseSampler:
    """Sampler ``name`` with ``options``, ``seed`` and, where it takes them, NSGA's ``population_size``, the grid
    (``grid``) and TPE's ``constant_liar`` (on unless ``options`` says otherwise: several workers sharing a study
    then do not all sample next to the same running trial; without running trials it changes nothing)."""
    cls, kwargs = SAMPLERS[name], {"seed": seed, **options}
    if name in ("nsga2", "nsga3"):
        kwargs["population_size"] = population_size
    if name == "tpe":
        kwargs = {"multivariate": True, "constant_liar": True, **kwargs}
    if name == "grid":
        kwargs["search_space"] = grid
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # nsga3, qmc: named on purpose
            return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"sampler {name}: {err}") from None
