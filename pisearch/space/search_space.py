"""A declarative search space over ResNet-family :class:`~pisearch.spec.ArchSpec` s, sampled through Optuna.

``sample(trial)`` talks to Optuna only through ``trial.suggest_*``, so every sampler works (random, TPE,
NSGA-II, grid, ``FixedTrial``). Every trial suggests the same parameters, each always with the same
distribution — one fixed encoding of the space, so that NSGA-II crosses over every knob and multivariate TPE
models them jointly (Optuna's samplers learn only from the parameters *every* finished trial has):

* ``num_stages``, ``block``, ``stem_kind``, ``stem_width``, and ``depth1`` … ``depthN`` for every declared stage;
* width knobs ``base_width`` (m) and ``ratio2`` … ``ratioN`` (α β γ …: stage widths m, m·α, m·α·β, …);
* activations ``act`` (network granularity), ``act_stem`` / ``act_stage2`` (stage), ``act_stage2.act1`` (position:
  one per stage and place in the block, DeepReDuce's culling and thinning), ``act_layer2.0`` (block) or
  ``act_layer2.0.act1`` (site), for the deepest network of every block type;
* ``<knob>_frac`` (a float in [0, 1]) replaces the *budget knob* when the space declares a ReLU window, a width
  cap or a MAC cap: see :meth:`SearchSpace.sample`.

A knob with a single value is a constant and suggests nothing. A parameter a trial does not use (the depth of a
stage it lacks, the act of a block it lacks) is still suggested and ignored. :meth:`SearchSpace.params_of` is the
inverse of sampling: the parameters that reproduce a given spec, or an error naming the knob that cannot.
"""

from __future__ import annotations

import math
from functools import partial
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from pisearch.config import read_yaml
from pisearch.cost import count
from pisearch.errors import UserError
from pisearch.spec import OUTER_STAGES, ArchSpec, Site, resnet, stage_widths
from pisearch.space.encoding import RandomParams, act_param, neighbour, params_of
from pisearch.space.schema import BudgetConfig, SpaceConfig, free_knob, parse_config, width_knobs

DRAW_TRIES = 100  # random draws SearchSpace.draw makes to find one inside the budget

_GROUP_KEY = {
    "network": lambda site: "",
    "stage": lambda site: site.stage,
    "position": lambda site: f"{site.stage}.{site.name.rsplit('.', 1)[1]}",
    "block": lambda site: site.name.rsplit(".", 1)[0],
    "site": lambda site: site.name,
}


class SearchSpace:
    """A validated search space; build with :meth:`load` (YAML file) or :meth:`from_dict`."""

    def __init__(self, config: SpaceConfig, name: str, source: str = "<dict>") -> None:
        self.config = config
        self.name = name
        self.source = source
        self.knobs = width_knobs(config)
        b = config.budget
        constrained = config.widths.max is not None or b.window != (None, None) or b.max_macs is not None
        self.budget_knob = free_knob(config) if constrained else None
        self.act_keys = self._all_act_keys()

    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        """Read and validate a YAML search-space file (errors name the file, the key path and the reason)."""
        return cls.from_dict(read_yaml(path), source=str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> SearchSpace:
        """Validate a mapping with the file's structure; ``source`` names it in error messages."""
        config = parse_config(data, source)
        name = config.name or (Path(source).stem if source != "<dict>" else "space")
        return cls(config, name, source)

    def to_dict(self) -> dict:
        """The validated space as plain JSON-able data with defaults filled in (``from_dict`` of it gives an
        equal space): a canonical identity for the space, whatever the file's spelling and comments."""
        return {**self.config.model_dump(mode="json"), "name": self.name}

    def with_budget(self, budget: BudgetConfig) -> SearchSpace:
        """A copy whose budget is this space's and ``budget`` (e.g. a study's) together: the intersection of the
        ReLU windows, the smaller MAC cap, ``budget``'s bins — so that sampling is budget-feasible by
        construction for both."""
        own = self.config.budget
        lows = [b for b in (budget.min_relus, own.min_relus) if b is not None]
        highs = [b for b in (budget.max_relus, own.max_relus) if b is not None]
        macs = [b for b in (budget.max_macs, own.max_macs) if b is not None]
        low, high = max(lows, default=None), min(highs, default=None)
        if low is not None and high is not None and low > high:
            raise UserError(f"{self.source}: budget: the window [{budget.min_relus}, {budget.max_relus}] asked for "
                            f"and the space's [{own.min_relus}, {own.max_relus}] do not overlap")
        merged = BudgetConfig.model_construct(min_relus=low, max_relus=high, max_macs=min(macs, default=None),
                                              bins=budget.bins or own.bins)  # bounds of validated budgets
        return SearchSpace(self.config.model_copy(update={"budget": merged}), self.name, self.source)

    @property
    def resolution(self) -> int:
        """Input side in pixels (square inputs)."""
        return self.config.resolution

    @property
    def budget(self) -> tuple[int | None, int | None]:
        """``(min_relus, max_relus)``, None where unbounded. ReLUs are ``count(spec).relus``: scalar ReLU
        evaluations per single-image inference of the sampled spec, under the space's convention (with B the
        stem is linearized, so its ReLUs are not counted)."""
        return self.config.budget.window

    @property
    def max_macs(self) -> int | None:
        """The MAC cap (multiply-accumulates per image), or None."""
        return self.config.budget.max_macs

    def bins(self) -> list[tuple[int, int]]:
        """The ``budget.bins`` log-spaced ReLU windows ``[low, high)`` covering the budget window (the last one
        closed), or ``[]`` when the budget declares no bins."""
        b = self.config.budget
        if not b.bins:
            return []
        edges = [round(b.min_relus * (b.max_relus / b.min_relus) ** (i / b.bins)) for i in range(b.bins + 1)]
        return [(lo, hi - 1 if i < b.bins - 1 else hi) for i, (lo, hi) in enumerate(zip(edges, edges[1:]))]

    # ---- sampling -------------------------------------------------------------------------------------
    def sample(self, trial: Any, *, num_classes: int, in_channels: int = 3,
               window: tuple[int | None, int | None] | None = None) -> ArchSpec:
        """One architecture for ``trial`` (an ``optuna.trial.BaseTrial``), asked only through ``suggest_*``.

        Budget knob: when the space declares a ReLU window, ``widths.max`` or ``budget.max_macs``, the first
        width knob with several values (``base_width`` if free, else the first free ratio) is sampled last, as
        ``<knob>_frac`` in [0, 1], mapped onto those of its values that satisfy the caps and give a ReLU count
        inside the window (``window`` replaces the budget's, e.g. one ReLU bin), computed exactly with
        :func:`pisearch.cost.count`, in increasing order. The width cap always holds (checked on load); if no
        value fits the rest, the value nearest to fitting is taken and the study must reject the spec. A trial
        whose stages do not include the knob is not constrained.
        """
        n, values, make = self.draft(trial, num_classes, in_channels)
        knob = self.budget_knob
        if knob is None:
            return make(stage_widths(values[0], values[1:n]))
        frac = trial.suggest_float(f"{self.knobs[knob][0]}_frac", 0.0, 1.0)
        if knob >= n:
            return make(stage_widths(values[0], values[1:n]))
        pool = self.fitting(values, knob, n, make, window)
        return pool[min(int(frac * len(pool)), len(pool) - 1)][1]

    def draw(self, rng: np.random.Generator, *, num_classes: int, in_channels: int = 3,
             tries: int = DRAW_TRIES) -> tuple[dict[str, Any], ArchSpec] | None:
        """One design drawn uniformly over the space's parameters (as Optuna's ``RandomSampler`` would) that lies
        inside the budget (ReLU window and MAC cap), with the parameters that give it; None when ``tries`` draws
        all fall outside it."""
        low, high = self.budget
        for _ in range(tries):
            trial = RandomParams(rng)
            spec = self.sample(trial, num_classes=num_classes, in_channels=in_channels)
            cost = count(spec)
            if ((low is None or cost.relus >= low) and (high is None or cost.relus <= high)
                    and (self.max_macs is None or cost.macs <= self.max_macs)):
                return trial.params, spec
        return None

    def draft(self, trial: Any, num_classes: int, in_channels: int) -> tuple[int, list, Any]:
        """Everything :meth:`sample` asks but the budget knob: the number of stages ``n``, the width knobs'
        values (None at the budget knob) and ``make(widths) -> spec`` for the sampled structure and acts."""
        c = self.config
        n = c.stages.count.suggest(trial, "num_stages") if c.stages.count else len(c.stages.depth)
        depths = tuple(d.suggest(trial, f"depth{i + 1}") for i, d in enumerate(c.stages.depth))
        make = partial(
            resnet,
            depths=depths[:n],
            block=c.stages.block.suggest(trial, "block"),
            stem=c.stem.kind.suggest(trial, "stem_kind"),
            stem_width=c.stem.width.suggest(trial, "stem_width") if c.stem.width else None,
            resolution=c.resolution,
            num_classes=num_classes,
            in_channels=in_channels,
            convention=c.convention,
        )
        values = [None if i == self.budget_knob else ch.suggest(trial, name)
                  for i, (name, ch) in enumerate(self.knobs)]
        kinds = {key: c.acts.choices.suggest(trial, act_param(key)) for key in self.act_keys}
        key = _GROUP_KEY[c.acts.granularity]
        sites = make((1,) * n).sites()
        fixed, default = self.fixed_stages(), c.acts.choices.values[0]
        acts = {s.name: kinds.get(key(s), default) for s in sites if s.stage not in fixed}
        return n, values, partial(make, acts=acts)

    def fitting(self, values: list, knob: int, n: int, make: Any,
                 window: tuple[int | None, int | None] | None = None) -> list[tuple[Any, ArchSpec]]:
        """``(knob value, spec)`` of every value of the budget knob that satisfies the caps and the ReLU window
        (``window`` or the budget's), in increasing order; when none does, the one value nearest to fitting."""
        cap, max_macs = self.config.widths.max, self.max_macs
        lo, hi = window if window is not None else self.budget
        lo, hi = lo or 0, math.inf if hi is None else hi
        fitting, scored = [], []
        for v in sorted(self.knobs[knob][1].values):
            chosen = [v if i == knob else value for i, value in enumerate(values)]
            widths = stage_widths(chosen[0], chosen[1:n])
            if cap is not None and max(widths) > cap:
                continue
            spec = make(widths)
            cost = count(spec)
            over = max(lo - cost.relus, cost.relus - hi, 0) / max(hi if hi != math.inf else lo, 1)
            over += 0.0 if max_macs is None else max(cost.macs - max_macs, 0) / max_macs
            scored.append((over, v, spec))
            if over == 0:
                fitting.append((v, spec))
        return fitting or [min(scored, key=lambda t: t[0])[1:]]

    def fixed_stages(self) -> tuple[str, ...]:
        """Stages whose sites are not searched (convention B keeps the stem and head linear)."""
        return OUTER_STAGES if self.config.convention == "B" else ()

    def groups(self, spec: ArchSpec) -> dict[str, list[Site]]:
        """Searched sites of ``spec`` grouped by the act granularity (convention B's stem/head are fixed)."""
        key = _GROUP_KEY[self.config.acts.granularity]
        groups: dict[str, list[Site]] = {}
        for site in spec.sites():
            if site.stage not in self.fixed_stages():
                groups.setdefault(key(site), []).append(site)
        return groups

    def _skeleton(self, block: str, depths: tuple[int, ...]) -> ArchSpec:
        return resnet((1,) * len(depths), depths, block=block, resolution=self.config.resolution,
                      convention=self.config.convention)

    def _all_act_keys(self) -> list[str]:
        """Every act group of the deepest network of every block type, in site order (the fixed encoding)."""
        c = self.config
        if c.acts.choices.fixed:
            return []
        deepest = tuple(max(d.values) for d in c.stages.depth)
        keys: dict[str, None] = {}
        for block in c.stages.block.values:
            keys.update(dict.fromkeys(self.groups(self._skeleton(block, deepest))))
        return list(keys)

    # ---- the inverse of sampling ----------------------------------------------------------------------
    def params_of(self, spec: ArchSpec, what: str = "spec") -> dict[str, Any]:
        """The parameters with which :meth:`sample` gives ``spec`` (every parameter of the fixed encoding; those
        the spec does not use take their first value). A spec the space cannot express raises a one-line
        :class:`UserError` starting with ``what`` that names the knob, the value and the choices."""
        return params_of(self, spec, what)

    def neighbour(self, params: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """``params`` with one knob the design uses moved to a nearby value (see :mod:`pisearch.space.encoding`)."""
        return neighbour(self, params, rng)

    # ---- enumeration ----------------------------------------------------------------------------------
    def grid(self) -> dict[str, list]:
        """Every parameter that :meth:`sample` suggests with all its values, for ``optuna.samplers.
        GridSampler``. The budget knob's ``<knob>_frac`` gets one midpoint per knob value, which reaches every
        value that fits a trial's budget, so a grid study visits every feasible spec (some more than once)."""
        c = self.config
        grid: dict[str, list] = {}
        singles = [("num_stages", c.stages.count), ("block", c.stages.block), ("stem_kind", c.stem.kind),
                   ("stem_width", c.stem.width)]
        singles += [(f"depth{i + 1}", d) for i, d in enumerate(c.stages.depth)]
        for i, (name, choice) in enumerate(self.knobs):
            if i == self.budget_knob:
                k = len(choice.values)
                grid[f"{name}_frac"] = [(j + 0.5) / k for j in range(k)]
            else:
                singles.append((name, choice))
        grid.update((name, list(ch.values)) for name, ch in singles if ch is not None and not ch.fixed)
        grid.update((act_param(key), list(c.acts.choices.values)) for key in self.act_keys)
        return grid

    def size(self) -> int:
        """Number of distinct points of the declared space (the budget and width cap ignored): distinct
        specs whenever distinct width choices give distinct widths (always with integer ratios)."""
        c = self.config
        kinds = len(c.acts.choices.values)
        counts = c.stages.count.values if c.stages.count else (len(c.stages.depth),)
        total = 0
        for n, block in product(counts, c.stages.block.values):
            widths = math.prod(len(ch.values) for _, ch in self.knobs[:n])
            total += widths * self._act_points(block, n, kinds)
        stem_widths = len(c.stem.width.values) if c.stem.width else 1
        return total * len(c.stem.kind.values) * stem_widths

    def _act_points(self, block: str, n: int, kinds: int) -> int:
        """Σ over the depth choices of the first ``n`` stages of kinds ** (number of act groups)."""
        depths = self.config.stages.depth[:n]
        if self.config.acts.granularity == "network":
            return kinds * math.prod(len(d.values) for d in depths)

        def groups(depth: int, stage: str) -> int:  # act groups of `stage` in a one-stage net of `depth` blocks
            return sum(1 for sites in self.groups(self._skeleton(block, (depth,))).values()
                       if sites[0].stage == stage)

        # every stage has as many groups as a first stage of its depth: the sum over depths factorizes
        total = kinds ** groups(1, "stem")
        for choice in depths:
            total *= sum(kinds ** groups(d, "stage1") for d in choice.values)
        return total
