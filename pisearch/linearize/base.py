"""What every linearization method shares: maskable sites and their granules, the exact-budget selection, the
search model (a gate module at every maskable site) and the conversion of a selection into a spec + model.

ReLU counts are those of :func:`pisearch.cost.count`: ``relus``, the exact count of every activation site of the
spec (a stem or head site counts when it is a ReLU), scalar ReLU evaluations per single-image inference.
A *unit* is what one mask entry switches: a position (``pixel`` granularity, 1 ReLU) or a channel of a site
(``channel`` granularity, H×W ReLUs). A site's *granule* is the ReLUs of one of its units.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from pisearch.errors import UserError
from pisearch.linearize.distill import Trainer
from pisearch.linearize.settings import LinearizeSettings
from pisearch.models import build
from pisearch.spec import Act, ArchSpec, Mask

GRANULARITIES = ("pixel", "channel")


@dataclass(frozen=True, eq=False)
class MaskSite:
    """A site whose ReLUs a method may switch off. ``keep`` (bool, ``unit_shape``) marks the units that are
    ReLUs in the input spec; the others are already off and stay off."""

    name: str
    channels: int
    height: int
    width: int
    granularity: str
    keep: torch.Tensor

    @property
    def unit_shape(self) -> tuple[int, ...]:
        return (self.channels,) if self.granularity == "channel" else (self.channels, self.height, self.width)

    @property
    def gate_shape(self) -> tuple[int, int, int]:
        """Shape that broadcasts a unit tensor over one image ``(C, H, W)``."""
        return (self.channels, 1, 1) if self.granularity == "channel" else self.unit_shape

    @property
    def granule(self) -> int:
        """ReLUs per unit: H×W for channel granularity, 1 for pixel granularity."""
        return self.height * self.width if self.granularity == "channel" else 1


def maskable_sites(spec: ArchSpec, granularity: str, off: str) -> list[MaskSite]:
    """Every ReLU site of ``spec`` (masked or not), as units of ``granularity``. A site already masked must
    switch its positions off to ``off`` (the method's kind) and, for channel granularity, be masked per channel."""
    if granularity not in GRANULARITIES:
        raise UserError(f"--granularity: expected pixel or channel, got {granularity!r}")
    out = []
    for site, (_, act) in zip(spec.sites(), spec.acts):
        if act.kind != "relu":
            continue
        full = (site.channels, site.height, site.width)
        if act.mask is None:
            keep = torch.ones(full[:1] if granularity == "channel" else full, dtype=torch.bool)
        else:
            keep = torch.from_numpy(act.mask.to_array())
            if not keep.all() and act.off != off:
                raise UserError(f"acts.{site.name}.off: the site is already masked to {act.off}; this method "
                                f"masks to {off}")
            if granularity == "channel" and act.mask.granularity == "pixel":
                raise UserError(f"acts.{site.name}.mask: per-pixel mask cannot be linearized per channel; use "
                                f"--granularity pixel")
            if granularity == "pixel" and keep.dim() == 1:
                keep = keep.view(-1, 1, 1).expand(full).clone()
        out.append(MaskSite(site.name, site.channels, site.height, site.width, granularity, keep))
    return out


def kept_relus(keeps: Mapping[str, torch.Tensor], sites: Sequence[MaskSite]) -> int:
    """ReLUs of the units ``keeps`` marks (all other sites of the spec are identity or poly: no ReLU)."""
    return sum(int(keeps[s.name].sum()) * s.granule for s in sites)


def greedy_fill(order: torch.Tensor, weights: torch.Tensor, capacity: int) -> torch.Tensor:
    """Take units in ``order`` while their ``weights`` fit in ``capacity``, skipping any that does not fit and
    going on with the next. Returns a bool mask over units. With unit weights it takes exactly
    ``min(capacity, len(order))``; otherwise what it leaves free is smaller than every unit it skipped."""
    taken = torch.zeros(len(weights), dtype=torch.bool)
    w = weights[order]
    prefix = int((w.cumsum(0) <= capacity).sum())
    taken[order[:prefix]] = True
    left = capacity - int(w[:prefix].sum())
    for unit, size in zip(order[prefix:].tolist(), w[prefix:].tolist()):
        if size <= left:
            taken[unit] = True
            left -= size
    return taken


class UnitIndex:
    """All units of the maskable sites in one flat vector (site order, then unit order), and back."""

    def __init__(self, sites: Sequence[MaskSite]) -> None:
        self.sites = list(sites)
        self.sizes = [s.keep.numel() for s in sites]
        self.weights = torch.cat([torch.full((n,), s.granule, dtype=torch.int64) for s, n in zip(sites, self.sizes)])

    def flat(self, per_site: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([per_site[s.name].reshape(-1) for s in self.sites])

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(flat, self.sizes)
        return {s.name: p.reshape(s.unit_shape).clone() for s, p in zip(self.sites, parts)}


def select_budget(scores: Mapping[str, torch.Tensor], sites: Sequence[MaskSite],
                  budget: int) -> dict[str, torch.Tensor]:
    """The hard threshold to the budget: keep the highest-scoring units (among those each site's ``keep``
    allows) whose ReLUs total at most ``budget``. Pixel granularity: exactly ``min(budget, allowed)`` ReLUs;
    channel granularity: greedy by score, skipping channels that do not fit, so the shortfall is below the
    granule of every channel left out. Ties keep the earlier unit."""
    units = UnitIndex(sites)
    allowed = units.flat({s.name: s.keep for s in sites})
    score = units.flat({name: t.detach().float().cpu() for name, t in scores.items()})
    order = torch.argsort(score.masked_fill(~allowed, float("-inf")), descending=True, stable=True)
    order = order[: int(allowed.sum())]
    return units.split(greedy_fill(order, units.weights, budget))


def install_gates(model: nn.Module, sites: Sequence[MaskSite], make_gate: Callable[[MaskSite], nn.Module]) -> nn.Module:
    """A deep copy of ``model`` with ``make_gate(site)`` at every maskable site's module path."""
    model = copy.deepcopy(model)
    for s in sites:
        model.set_submodule(s.name, make_gate(s))
    return model


@dataclass
class Job:
    """One linearization run as a method sees it: the model to start from (trained weights, not modified), its
    spec and maskable sites, the budget (ReLUs, every site) and the trainer (data, teacher, settings)."""

    model: nn.Module
    spec: ArchSpec
    sites: list[MaskSite]
    budget: int
    trainer: Trainer

    @property
    def settings(self) -> LinearizeSettings:
        return self.trainer.settings

    @property
    def search_steps(self) -> int:
        return self.trainer.steps(self.settings.search_epochs)


@dataclass
class Selection:
    """What a method's search returns: the kept units per site, the model whose conv/BN/fc weights continue
    (its site modules are ignored), the per-channel polynomial coefficients ``(C, 3)`` (c2 c1 c0) of poly sites,
    and method details for the report."""

    keeps: dict[str, torch.Tensor]
    model: nn.Module
    coefs: dict[str, torch.Tensor] = field(default_factory=dict)
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A registered method: ``off`` is what masked-off positions compute; ``search(job)`` picks the units."""

    name: str
    off: str
    search: Callable[[Job], Selection]
    summary: str


METHODS: dict[str, Method] = {}


def register_method(name: str, off: str) -> Callable[[Callable[[Job], Selection]], Callable[[Job], Selection]]:
    """Register ``search(job) -> Selection`` as method ``name`` whose masked-off positions compute ``off``; the
    first line of its docstring is the method's summary."""

    def deco(fn: Callable[[Job], Selection]) -> Callable[[Job], Selection]:
        METHODS[name] = Method(name, off, fn, (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return deco


def site_act(keep: torch.Tensor, off: str) -> Act:
    """The spec activation of a site whose kept units are ``keep``: plain ``relu`` when all are kept, ``off``
    when none is, else a masked ReLU."""
    if keep.all():
        return Act("relu")
    if not keep.any():
        return Act(off)
    return Act("relu", Mask.from_array(keep), off)


def finalize(spec: ArchSpec, selection: Selection, sites: Sequence[MaskSite], off: str) -> tuple[ArchSpec, nn.Module]:
    """The spec with the selection's masks and a model built from it carrying the selection's weights (and, for
    poly sites, its coefficients)."""
    acts = {s.name: site_act(selection.keeps[s.name], off) for s in sites}
    new_spec = spec.with_acts(acts)
    model = build(new_spec)
    source, own = selection.model.state_dict(), model.state_dict()
    masked = {s.name for s in sites}
    state = {}
    for key, value in own.items():  # a masked site's buffers (its keep mask) are the new model's own
        site = _poly_site(key)
        if site in selection.coefs:
            value = selection.coefs[site]
        elif key.rpartition(".")[0] not in masked:
            value = source[key]
        state[key] = value.detach().cpu()
    model.load_state_dict(state)
    return new_spec, model


def _poly_site(key: str) -> str | None:
    """The site of a polynomial-coefficient state key (``site.coef`` or ``site.off.coef``), else None."""
    for suffix in (".off.coef", ".coef"):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return None
