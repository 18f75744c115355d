"""A declarative search space over ResNet-family :class:`~pisearch.spec.ArchSpec` s, sampled through Optuna.

``sample(trial)`` talks to Optuna only through ``trial.suggest_*``, so every sampler works (random, TPE,
NSGA-II, grid, ``FixedTrial``). Parameter names are stable and each always has the same distribution:

* ``num_stages``, ``block``, ``stem_kind``, ``stem_width``, ``depth1`` … ``depthN``;
* width knobs ``base_width`` (m) and ``ratio2`` … ``ratioN`` (α β γ …: stage widths m, m·α, m·α·β, …);
* activations ``act`` (network granularity), ``act_stem`` / ``act_stage2`` (stage), ``act_stem`` /
  ``act_layer2.0`` (block) or ``act_stem.act`` / ``act_layer2.0.act1`` (site);
* ``<knob>_frac`` (a float in [0, 1]) replaces the *budget knob* when the space declares a ReLU window or a
  width cap: see :meth:`SearchSpace.sample`.

A knob with a single value is a constant and suggests nothing; parameters of stages (or blocks) that a trial
does not have are not suggested (conditional parameters).
"""

from __future__ import annotations

import math
from functools import partial
from itertools import product
from pathlib import Path
from typing import Any

from pisearch.config import read_yaml
from pisearch.cost import count
from pisearch.errors import UserError
from pisearch.spec import OUTER_STAGES, ArchSpec, Site, resnet, stage_widths
from pisearch.space.schema import BudgetConfig, SpaceConfig, free_knob, parse_config, width_knobs

_GROUP_KEY = {
    "network": lambda site: "",
    "stage": lambda site: site.stage,
    "block": lambda site: site.name.rsplit(".", 1)[0],
    "site": lambda site: site.name,
}


def _act_param(key: str) -> str:
    return f"act_{key}" if key else "act"


class SearchSpace:
    """A validated search space; build with :meth:`load` (YAML file) or :meth:`from_dict`."""

    def __init__(self, config: SpaceConfig, name: str, source: str = "<dict>") -> None:
        self.config = config
        self.name = name
        self.source = source
        self._knobs = width_knobs(config)
        constrained = config.widths.max is not None or self.budget != (None, None)
        self._budget_knob = free_knob(config) if constrained else None

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

    def with_budget(self, min_relus: int | None = None, max_relus: int | None = None) -> SearchSpace:
        """A copy whose ReLU window is the intersection of this space's and ``[min_relus, max_relus]`` (e.g. a
        study's budget), so that sampling is budget-feasible by construction for it too."""
        lows = [b for b in (min_relus, self.budget[0]) if b is not None]
        highs = [b for b in (max_relus, self.budget[1]) if b is not None]
        low, high = max(lows, default=None), min(highs, default=None)
        if low is not None and high is not None and low > high:
            raise UserError(f"{self.source}: budget: the window [{min_relus}, {max_relus}] asked for and the space's "
                            f"[{self.budget[0]}, {self.budget[1]}] do not overlap")
        budget = BudgetConfig.model_construct(min_relus=low, max_relus=high)  # bounds of validated windows
        return SearchSpace(self.config.model_copy(update={"budget": budget}), self.name, self.source)

    @property
    def resolution(self) -> int:
        """Input side in pixels (square inputs)."""
        return self.config.resolution

    @property
    def budget(self) -> tuple[int | None, int | None]:
        """``(min_relus, max_relus)``, None where unbounded. ReLUs are ``count(spec).relus``: scalar ReLU
        evaluations per single-image inference of the sampled spec, under the space's convention (with B the
        stem is linearized, so its ReLUs are not counted)."""
        return self.config.budget.min_relus, self.config.budget.max_relus

    # ---- sampling -------------------------------------------------------------------------------------
    def sample(self, trial: Any, *, num_classes: int, in_channels: int = 3) -> ArchSpec:
        """One architecture for ``trial`` (an ``optuna.trial.BaseTrial``), asked only through ``suggest_*``.

        Budget knob: when the space declares ``budget`` or ``widths.max``, the first width knob with several
        values (``base_width`` if free, else the first free ratio) is sampled last, as ``<knob>_frac`` in
        [0, 1], mapped onto those of its values that satisfy the cap and give a ReLU count inside the budget
        window (computed exactly with :func:`pisearch.cost.count`), in increasing order. The cap always holds
        (checked on load); if no value fits the ReLU window, the value whose count is nearest to it is taken
        and the study must reject the spec. A trial whose stages do not include the knob is not constrained.
        """
        c = self.config
        n = c.stages.count.suggest(trial, "num_stages") if c.stages.count else len(c.stages.depth)
        make = partial(
            resnet,
            depths=tuple(d.suggest(trial, f"depth{i + 1}") for i, d in enumerate(c.stages.depth[:n])),
            block=c.stages.block.suggest(trial, "block"),
            stem=c.stem.kind.suggest(trial, "stem_kind"),
            stem_width=c.stem.width.suggest(trial, "stem_width") if c.stem.width else None,
            resolution=c.resolution,
            num_classes=num_classes,
            in_channels=in_channels,
            convention=c.convention,
        )
        knob = self._budget_knob if self._budget_knob is not None and self._budget_knob < n else None
        values = [None if i == knob else ch.suggest(trial, name) for i, (name, ch) in enumerate(self._knobs[:n])]
        skeleton = make((1,) * n)
        acts = {}
        for key, sites in self._groups(skeleton).items():
            kind = c.acts.choices.suggest(trial, _act_param(key))
            acts.update((s.name, kind) for s in sites)
        make = partial(make, acts=acts)
        if knob is None:
            return make(stage_widths(values[0], values[1:]))
        return self._fit_budget(trial, knob, values, make)

    def _fit_budget(self, trial: Any, knob: int, values: list, make: Any) -> ArchSpec:
        name, choice = self._knobs[knob]
        frac = trial.suggest_float(f"{name}_frac", 0.0, 1.0)
        cap = self.config.widths.max
        lo, hi = self.budget
        lo, hi = lo or 0, math.inf if hi is None else hi
        fitting, scored = [], []
        for v in sorted(choice.values):
            values[knob] = v
            widths = stage_widths(values[0], values[1:])
            if cap is not None and max(widths) > cap:
                continue
            spec = make(widths)
            relus = count(spec).relus
            scored.append((max(lo - relus, relus - hi, 0), spec))
            if lo <= relus <= hi:
                fitting.append(spec)
        pool = fitting or [min(scored, key=lambda t: t[0])[1]]
        return pool[min(int(frac * len(pool)), len(pool) - 1)]

    def _groups(self, spec: ArchSpec) -> dict[str, list[Site]]:
        """Searched sites of ``spec`` grouped by the act granularity (convention B's stem/head are fixed)."""
        key = _GROUP_KEY[self.config.acts.granularity]
        fixed = OUTER_STAGES if self.config.convention == "B" else ()
        groups: dict[str, list[Site]] = {}
        for site in spec.sites():
            if site.stage not in fixed:
                groups.setdefault(key(site), []).append(site)
        return groups

    def _skeleton(self, block: str, depths: tuple[int, ...]) -> ArchSpec:
        return resnet((1,) * len(depths), depths, block=block, resolution=self.config.resolution,
                      convention=self.config.convention)

    # ---- enumeration ----------------------------------------------------------------------------------
    def grid(self) -> dict[str, list]:
        """Every parameter that :meth:`sample` may suggest with all its values, for ``optuna.samplers.
        GridSampler``. The budget knob's ``<knob>_frac`` gets one midpoint per knob value, which reaches every
        value that fits a trial's budget, so a grid study visits every feasible spec (some more than once)."""
        c = self.config
        grid: dict[str, list] = {}
        singles = [("num_stages", c.stages.count), ("block", c.stages.block), ("stem_kind", c.stem.kind),
                   ("stem_width", c.stem.width)]
        singles += [(f"depth{i + 1}", d) for i, d in enumerate(c.stages.depth)]
        for i, (name, choice) in enumerate(self._knobs):
            if i == self._budget_knob:
                k = len(choice.values)
                grid[f"{name}_frac"] = [(j + 0.5) / k for j in range(k)]
            else:
                singles.append((name, choice))
        grid.update((name, list(ch.values)) for name, ch in singles if ch is not None and not ch.fixed)
        if not c.acts.choices.fixed:
            deepest = tuple(max(d.values) for d in c.stages.depth)
            for block in c.stages.block.values:
                keys = self._groups(self._skeleton(block, deepest))
                grid.update((_act_param(key), list(c.acts.choices.values)) for key in keys)
        return grid

    def size(self) -> int:
        """Number of distinct points of the declared space (the budget and width cap ignored): distinct
        specs whenever distinct width choices give distinct widths (always with integer ratios)."""
        c = self.config
        kinds = len(c.acts.choices.values)
        counts = c.stages.count.values if c.stages.count else (len(c.stages.depth),)
        total = 0
        for n, block in product(counts, c.stages.block.values):
            widths = math.prod(len(ch.values) for _, ch in self._knobs[:n])
            total += widths * self._act_points(block, n, kinds)
        stem_widths = len(c.stem.width.values) if c.stem.width else 1
        return total * len(c.stem.kind.values) * stem_widths

    def _act_points(self, block: str, n: int, kinds: int) -> int:
        """Σ over the depth choices of the first ``n`` stages of kinds ** (number of act groups)."""
        depths = self.config.stages.depth[:n]
        if self.config.acts.granularity == "network":
            return kinds * math.prod(len(d.values) for d in depths)

        def groups(depth: int, stage: str) -> int:  # act groups of `stage` in a one-stage net of `depth` blocks
            return sum(1 for sites in self._groups(self._skeleton(block, (depth,))).values()
                       if sites[0].stage == stage)

        # every stage has as many groups as a first stage of its depth: the sum over depths factorizes
        total = kinds ** groups(1, "stem")
        for choice in depths:
            total *= sum(kinds ** groups(d, "stage1") for d in choice.values)
        return total
