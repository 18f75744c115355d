"""The search-space file format: pydantic models, validated strictly, and their one-line error messages.

A *choice* is written as a single value (fixed, never suggested), a list of values (``suggest_categorical``)
or, for integers, a range ``{low, high, step}`` (``suggest_int``, so samplers can use the order).
See ``search_spaces/*.yaml`` for commented examples of every key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer, PlainValidator, model_validator

from pisearch.config import ConfigModel, validate
from pisearch.errors import UserError
from pisearch.spec import ACT_KINDS, BLOCK_EXPANSION, CONVENTIONS, STEM_KINDS, stage_widths

GRANULARITIES = ("network", "stage", "position", "block", "site")


@dataclass(frozen=True)
class Choice:
    """The values one knob may take; ``step`` is set when it was declared as an integer range."""

    values: tuple
    step: int | None = None

    @property
    def fixed(self) -> bool:
        """A single value: the knob is a constant and no parameter is suggested for it."""
        return len(self.values) == 1

    def suggest(self, trial: Any, name: str) -> Any:
        """The value for this trial, asked of Optuna as parameter ``name`` (nothing is asked when fixed)."""
        if self.fixed:
            return self.values[0]
        if self.step is not None:
            return trial.suggest_int(name, self.values[0], self.values[-1], step=self.step)
        return trial.suggest_categorical(name, self.values)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _parse_range(value: Mapping, what: str, check: Callable[[Any], bool]) -> Choice:
    unknown = set(value) - {"low", "high", "step"}
    if unknown:
        raise ValueError(f"unknown range key {sorted(unknown)[0]!r} (allowed: low, high, step)")
    if "low" not in value or "high" not in value:
        raise ValueError("a range needs both low and high")
    low, high, step = value["low"], value["high"], value.get("step", 1)
    for key, v in (("low", low), ("high", high)):
        if not check(v):
            raise ValueError(f"range {key}: expected {what}, got {v!r}")
    if not _is_int(step) or step < 1:
        raise ValueError(f"range step: expected an integer ≥ 1, got {step!r}")
    if low > high:
        raise ValueError(f"range low ({low}) is above high ({high})")
    if (high - low) % step:
        raise ValueError(f"range high - low ({high - low}) is not a multiple of step ({step})")
    return Choice(tuple(range(low, high + 1, step)), step)


def _choice_type(what: str, check: Callable[[Any], bool], *, ranges: bool = False, optional: bool = False):
    """An annotated :class:`Choice` field type whose elements must satisfy ``check`` (described by ``what``)."""

    def parse(value: Any) -> Choice | None:
        if isinstance(value, Choice) or (value is None and optional):
            return value
        if isinstance(value, Mapping):
            if not ranges:
                raise ValueError(f"expected {what} or a list of them, got a mapping")
            return _parse_range(value, what, check)
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ValueError("empty list of choices")
        for i, v in enumerate(values):
            if not check(v):
                where = f" (choice {i})" if isinstance(value, list) else ""
                raise ValueError(f"expected {what}, got {v!r}{where}")
        if len(set(values)) != len(values):
            raise ValueError(f"duplicate choices in {values!r}")
        return Choice(tuple(values))

    kind = Choice | None if optional else Choice
    return Annotated[kind, PlainValidator(parse), PlainSerializer(_dump_choice)]


def _dump_choice(choice: Choice | None) -> Any:
    """A choice written back in the file's notation (``parse`` of the result gives the same choice)."""
    if choice is None or choice.fixed:
        return None if choice is None else choice.values[0]
    if choice.step is not None:
        return {"low": choice.values[0], "high": choice.values[-1], "step": choice.step}
    return list(choice.values)


def _one_of(names: tuple[str, ...] | Mapping) -> tuple[str, Callable[[Any], bool]]:
    return "one of " + ", ".join(names), lambda v: isinstance(v, str) and v in names


_POSITIVE = ("an integer ≥ 1", lambda v: _is_int(v) and v >= 1)
PositiveInts = _choice_type(*_POSITIVE, ranges=True)
OptionalPositiveInts = _choice_type(*_POSITIVE, ranges=True, optional=True)
Ratios = _choice_type("a number > 0", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
                      ranges=True)
ActKinds = _choice_type(*_one_of(ACT_KINDS))
BlockKinds = _choice_type(*_one_of(BLOCK_EXPANSION))
StemKinds = _choice_type(*_one_of(STEM_KINDS))


class StemConfig(ConfigModel):
    """The stem before the first stage."""

    kind: StemKinds = Field(Choice(("cifar",)), description="cifar (3×3 conv, stride 1) | imagenet (7×7/2 + "
                            "max-pool)")
    width: OptionalPositiveInts = Field(None, description="stem width choice; null: the first stage's width")


class WidthsConfig(ConfigModel):
    """Stage widths: the first stage's ``base`` (DeepReShape's m), each later stage the one before × its ratio."""

    base: PositiveInts = Field(description="m, the first stage's width (required)")
    ratios: list[Ratios] = Field([], description="one choice per stage after the first: DeepReShape's α, β, γ "
                                 "(stage i+1 width = stage i width × ratio)")
    max: int | None = Field(None, ge=1, description="cap on every stage's width")


class StagesConfig(ConfigModel):
    """Stages of residual blocks."""

    depth: list[PositiveInts] = Field(min_length=1, description="blocks per stage, one choice per stage (required)")
    count: OptionalPositiveInts = Field(None, description="stages used; null: every declared stage")
    block: BlockKinds = Field(Choice(("basic",)), description="basic | bottleneck")


class ActsConfig(ConfigModel):
    """What each activation site computes."""

    choices: ActKinds = Field(Choice(("relu",)), description="relu | poly (degree-2 polynomial) | identity")
    granularity: Literal[GRANULARITIES] = Field("stage", description="one choice per network | stage | position "
                                                "(stage × the block's act1 / act2, shared by the stage's blocks) | "
                                                "block | site")


class BudgetConfig(ConfigModel):
    """A ReLU window: scalar ReLU evaluations per single-image inference (the exact count of every site of a
    spec, in its own convention), ``None`` where unbounded. The ``budget:`` block of search spaces and studies."""

    min_relus: int | None = Field(None, ge=0, description="fewest ReLUs a trained candidate may have")
    max_relus: int | None = Field(None, ge=1, description="most ReLUs a trained candidate may have; with a window, "
                                  "the first free width knob is sampled last so sampling stays in it")
    max_macs: int | None = Field(None, ge=1, description="compute cap: multiply-accumulates per image; a candidate "
                                 "above it is costed, recorded infeasible and never trained (a sampled one is "
                                 "re-drawn: its slot goes to a new draw)")
    bins: int | None = Field(None, ge=2, description="spread searched trials over this many log-spaced ReLU bins of "
                             "[min_relus, max_relus], each trial aimed at the bin with the fewest so far")

    @model_validator(mode="after")
    def _ordered(self) -> BudgetConfig:
        if self.min_relus is not None and self.max_relus is not None and self.min_relus > self.max_relus:
            raise ValueError(f"min_relus {self.min_relus} is larger than max_relus {self.max_relus}")
        if self.bins is not None and not (self.min_relus and self.max_relus):
            raise ValueError("bins needs both min_relus (≥ 1) and max_relus: the bins split that window")
        return self

    @property
    def window(self) -> tuple[int | None, int | None]:
        """``(min_relus, max_relus)``."""
        return self.min_relus, self.max_relus


class SpaceConfig(ConfigModel):
    """A whole search-space file (see ``search_spaces/resnet_widths.yaml`` for every key explained)."""

    name: str | None = Field(None, min_length=1, description="the space's name; null: the file name")
    resolution: int = Field(ge=8, description="input side in pixels (required)")
    convention: Literal[CONVENTIONS] = Field("A", description="A: the stem ReLU is a searched site; B: the stem is "
                                             "linear (SNL's form)")
    stem: StemConfig = Field(StemConfig(), description="the stem")
    widths: WidthsConfig = Field(description="stage widths (required)")
    stages: StagesConfig = Field(description="stages (required)")
    acts: ActsConfig = Field(ActsConfig(), description="activation choices")
    budget: BudgetConfig = Field(BudgetConfig(), description="ReLU window, MAC cap and bins (a study's budget: is "
                                 "merged in)")


def fail(source: str, path: str, reason: str) -> UserError:
    """The one-line error for a bad search-space file: ``<file>: <key path>: <reason>``."""
    return UserError(f"{source}: {path}: {reason}")


def parse_config(data: Any, source: str) -> SpaceConfig:
    """Validate a search-space mapping; a problem raises :class:`UserError` naming ``source``, key and reason."""
    if not isinstance(data, Mapping):
        got = "an empty file" if data is None else type(data).__name__
        raise fail(source, "(top level)", f"expected a mapping of keys, got {got}")
    config = validate(SpaceConfig, dict(data), source)
    _check_consistency(config, source)
    return config


def _check_consistency(c: SpaceConfig, source: str) -> None:
    n = len(c.stages.depth)
    if len(c.widths.ratios) != n - 1:
        raise fail(source, "widths.ratios", f"expected one entry per stage after the first ({n - 1}, as "
                                            f"stages.depth declares {n} stages), got {len(c.widths.ratios)}")
    if c.stages.count is not None and max(c.stages.count.values) > n:
        raise fail(source, "stages.count", f"at most {n} stages are declared in stages.depth, "
                                           f"got {max(c.stages.count.values)}")
    if c.widths.max is not None:
        widest = max(widest_widths(c))
        if widest > c.widths.max:
            knob = free_knob(c)
            via = "no width knob is free" if knob is None else f"{width_knobs(c)[knob][0]} at its smallest value"
            raise fail(source, "widths.max", f"{c.widths.max} cannot always be met: with {via}, the other width "
                                             f"choices reach a stage width of {widest}")


def width_knobs(c: SpaceConfig) -> list[tuple[str, Choice]]:
    """The width knobs in order, as ``(parameter name, choice)``: ``base_width`` (m), then ``ratio2`` (α: stage 2
    width / stage 1 width), ``ratio3`` (β), …"""
    return [("base_width", c.widths.base)] + [(f"ratio{i + 2}", r) for i, r in enumerate(c.widths.ratios)]


def free_knob(c: SpaceConfig) -> int | None:
    """Index in :func:`width_knobs` of the first knob with more than one value (the budget knob), or None."""
    return next((i for i, (_, ch) in enumerate(width_knobs(c)) if not ch.fixed), None)


def widest_widths(c: SpaceConfig) -> tuple[int, ...]:
    """Stage widths with the free knob at its narrowest value and every other knob at its widest: the widest
    network that the width cap must admit (widths grow with every knob)."""
    knob = free_knob(c)
    values = [min(ch.values) if i == knob else max(ch.values) for i, (_, ch) in enumerate(width_knobs(c))]
    return stage_widths(values[0], values[1:])

