"""The space's fixed encoding read backwards: the parameters that reproduce a spec (seeding a search with known
designs), and nearby parameters (mutated neighbours of a seed).

Both talk about one :class:`~pisearch.space.SearchSpace` through its public helpers (``knobs``, ``budget_knob``,
``act_keys``, ``draft``, ``fitting``, ``groups``) and check themselves against :meth:`SearchSpace.sample`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pisearch.errors import UserError
from pisearch.space.schema import Choice
from pisearch.spec import ArchSpec, stage_widths

if TYPE_CHECKING:
    from pisearch.space.search_space import SearchSpace


class FixedParams:
    """A stand-in for an Optuna trial that answers every ``suggest_*`` from a mapping of parameter values (what
    ``optuna.trial.FixedTrial`` does, without importing Optuna into the space layer)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def _value(self, name: str) -> Any:
        if name not in self.params:
            raise KeyError(f"parameter {name!r} is missing (the space's encoding asks for it)")
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int, step: int = 1) -> int:
        return self._value(name)

    def suggest_float(self, name: str, low: float, high: float) -> float:
        return self._value(name)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._value(name)


class RandomParams(FixedParams):
    """A stand-in for an Optuna trial that answers every ``suggest_*`` uniformly at random from ``rng`` (what
    Optuna's ``RandomSampler`` does) and records the answers in ``params``."""

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__({})
        self.rng = rng

    def suggest_int(self, name: str, low: int, high: int, step: int = 1) -> int:
        self.params[name] = low + step * int(self.rng.integers((high - low) // step + 1))
        return self.params[name]

    def suggest_float(self, name: str, low: float, high: float) -> float:
        self.params[name] = float(self.rng.uniform(low, high))
        return self.params[name]

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.params[name] = choices[int(self.rng.integers(len(choices)))]
        return self.params[name]


def act_param(key: str) -> str:
    """The parameter name of act group ``key`` (``act`` for the network granularity's one group)."""
    return f"act_{key}" if key else "act"


def params_of(space: SearchSpace, spec: ArchSpec, what: str = "spec") -> dict[str, Any]:
    """The parameters with which ``space.sample`` gives ``spec`` (every parameter of the fixed encoding; those the
    spec does not use take their first value). A spec the space cannot express raises a one-line
    :class:`UserError` starting with ``what`` that names the knob, the value and the choices."""
    c = space.config
    params: dict[str, Any] = {}

    def take(name: str, choice: Choice | None, value: Any) -> None:
        if choice is None or choice.fixed:
            if choice is not None and value != choice.values[0]:
                raise _cannot(what, space.name, name, value, choice)
            return
        if value not in choice.values:
            raise _cannot(what, space.name, name, value, choice)
        params[name] = value

    if spec.resolution != c.resolution or spec.preact:
        raise UserError(f"{what}: the space {space.name} cannot express it: resolution {spec.resolution}"
                        f"{', pre-activation blocks' if spec.preact else ''} (the space: {c.resolution}², "
                        "post-activation blocks)")
    n = len(spec.stages)
    take("num_stages", c.stages.count or Choice((len(c.stages.depth),)), n)
    take("block", c.stages.block, spec.stages[0].block if len({s.block for s in spec.stages}) == 1 else "mixed")
    take("stem_kind", c.stem.kind, spec.stem.kind)
    if c.stem.width is not None:
        take("stem_width", c.stem.width, spec.stem.width)
    elif spec.stem.width != spec.stages[0].width:
        raise UserError(f"{what}: the space {space.name} cannot express it: stem width {spec.stem.width} (the "
                        f"space's stem has the first stage's width, {spec.stages[0].width})")
    for i, choice in enumerate(c.stages.depth):
        take(f"depth{i + 1}", choice, spec.stages[i].depth if i < n else choice.values[0])
    values = _width_values(space, spec, what)
    knob = space.budget_knob
    for i, (name, choice) in enumerate(space.knobs):
        if i != knob:
            take(name, choice, values[i])
    for key in space.act_keys:
        params[act_param(key)] = _act_of(space, spec, key, what)
    if knob is not None:
        name, choice = space.knobs[knob]
        if values[knob] not in choice.values:
            raise _cannot(what, space.name, name, values[knob], choice)
        params[f"{name}_frac"] = _frac_of(space, spec, values, knob, params, what)
    if space.sample(FixedParams(params), num_classes=spec.num_classes, in_channels=spec.in_channels).hash != spec.hash:
        raise UserError(f"{what}: the space {space.name} cannot express it (sampling its parameters gives another "
                        "network: a mask, or a convention other than the space's)")
    return params


def _width_values(space: SearchSpace, spec: ArchSpec, what: str) -> list[Any]:
    """Each width knob's value for ``spec``: m, then the ratio that reproduces each stage's width (the first
    value for stages ``spec`` lacks)."""
    widths = [st.width for st in spec.stages]
    values: list[Any] = [widths[0]]
    for i, (name, choice) in enumerate(space.knobs[1:], start=1):
        if i >= len(widths):
            values.append(choice.values[0])
            continue
        match = [r for r in choice.values if stage_widths(widths[i - 1], (r,))[1] == widths[i]]
        if not match:
            raise _cannot(what, space.name, name, f"{widths[i]}/{widths[i - 1]} (stage widths "
                          f"{'-'.join(map(str, widths))})", choice)
        values.append(match[0])
    return values


def _act_of(space: SearchSpace, spec: ArchSpec, key: str, what: str) -> str:
    """The act kind of group ``key`` in ``spec`` (the first choice when ``spec`` lacks the group)."""
    choice = space.config.acts.choices
    acts = spec.act_map
    sites = space.groups(spec).get(key, [])
    if not sites:
        return choice.values[0]
    kinds = {acts[s.name].kind if acts[s.name].mask is None else "masked" for s in sites}
    if len(kinds) > 1 or kinds - set(choice.values):
        value = "/".join(sorted(kinds)) + (" within one group" if len(kinds) > 1 else "")
        raise _cannot(what, space.name, act_param(key), value, choice)
    return kinds.pop()


def _frac_of(space: SearchSpace, spec: ArchSpec, values: list, knob: int, params: dict, what: str) -> float:
    """The ``<knob>_frac`` that maps onto ``spec``'s value of the budget knob (the middle of its share)."""
    n, _, make = space.draft(FixedParams(params), spec.num_classes, spec.in_channels)
    if knob >= n:
        return 0.5
    pool = [v for v, _ in space.fitting(values, knob, n, make)]
    name, value = space.knobs[knob][0], values[knob]
    if value not in pool:
        raise UserError(f"{what}: the space {space.name} cannot express it: {name} = {value} does not fit the "
                        f"space's budget (values that fit with the other knobs: {', '.join(map(str, pool))})")
    return (pool.index(value) + 0.5) / len(pool)


def used_params(space: SearchSpace, params: dict[str, Any]) -> list[str]:
    """The free parameters of ``params`` that shape the design they encode (the depth, width and act knobs of
    the stages and blocks it has, the budget knob's fraction when it applies)."""
    c = space.config
    n = params.get("num_stages", len(c.stages.depth))
    spec = space.sample(FixedParams(params), num_classes=2)
    names = [name for name in ("num_stages", "block", "stem_kind", "stem_width") if name in params]
    names += [f"depth{i + 1}" for i in range(n) if f"depth{i + 1}" in params]
    names += [name for name, _ in space.knobs[:n] if name in params]
    if space.budget_knob is not None and space.budget_knob < n:
        names.append(f"{space.knobs[space.budget_knob][0]}_frac")
    names += [act_param(key) for key in space.groups(spec) if act_param(key) in params]
    return names


def neighbour(space: SearchSpace, params: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """``params`` with one knob the design uses moved: an ordered knob (depth, width, number of stages) to the next
    value up or down, a kind (activation, block) to another kind, the budget knob's fraction by one value of its
    share."""
    names = used_params(space, params)
    name = names[int(rng.integers(len(names)))]
    out = dict(params)
    if name.endswith("_frac"):
        step = 1.0 / max(1, len(space.knobs[space.budget_knob][1].values))
        out[name] = float(np.clip(params[name] + step * rng.choice([-1.0, 1.0]), 0.0, 1.0))
        return out
    values = list(space.grid()[name])
    here = values.index(params[name])
    if all(isinstance(v, (int, float)) for v in values):  # ordered: one step, bouncing off the ends
        there = here + int(rng.choice([-1, 1]))
        there = there if 0 <= there < len(values) else here - (there - here)
    else:
        there = int(rng.choice([i for i in range(len(values)) if i != here]))
    out[name] = values[min(max(there, 0), len(values) - 1)]
    return out


def _cannot(what: str, space: str, knob: str, value: Any, choice: Choice) -> UserError:
    shown = ", ".join(map(str, choice.values)) if choice.step is None else (
        f"{choice.values[0]}–{choice.values[-1]} step {choice.step}")
    return UserError(f"{what}: the space {space} cannot express it: {knob} = {value} (choices: {shown})")
