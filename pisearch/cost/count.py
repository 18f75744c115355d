"""Exact private-inference cost of a spec, computed analytically in O(layers) — no model, no forward pass.

Units: ``relus`` and ``polys`` are scalar ReLU / degree-2 polynomial evaluations per single-image
inference; ``macs`` are multiply-accumulates of conv and fc layers per image; ``params`` counts every
trainable parameter (conv, BN affine, fc, polynomial coefficients).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pisearch.spec import OUTER_STAGES, ArchSpec, Layer


@dataclass(frozen=True)
class SiteCost:
    """One activation site: its stage, kind (``relu``/``poly``/``identity``/``masked``), input shape
    ``(C, H, W)`` and the scalar ReLU and polynomial evaluations it costs per image."""

    name: str
    stage: str
    kind: str
    shape: tuple[int, int, int]
    relus: int
    polys: int


@dataclass(frozen=True)
class LayerCost:
    """One parameterised layer with its MACs and parameters per image."""

    layer: Layer
    macs: int
    params: int


@dataclass(frozen=True)
class Cost:
    """Totals and per-site / per-layer tables of a spec's cost (see module docstring for units)."""

    relus: int
    polys: int
    macs: int
    params: int
    sites: tuple[SiteCost, ...]
    layers: tuple[LayerCost, ...]

    @property
    def relus_b(self) -> int:
        """ReLUs under convention B (SNL's count): stem and head sites excluded."""
        return sum(s.relus for s in self.sites if s.stage not in OUTER_STAGES)

    def stage_relus(self) -> dict[str, int]:
        """ReLUs per stage label (``stem``, ``stage1`` …, ``head``), in forward order."""
        out: dict[str, int] = {}
        for s in self.sites:
            out[s.stage] = out.get(s.stage, 0) + s.relus
        return out

    def to_dict(self, tables: bool = True) -> dict:
        """Plain JSON-able dict with totals (``relus``, ``relus_b``, ``polys``, ``macs``, ``params``),
        ``stage_relus`` and, with ``tables``, the ``sites`` and ``layers`` tables."""
        out = {"relus": self.relus, "relus_b": self.relus_b, "polys": self.polys, "macs": self.macs,
               "params": self.params, "stage_relus": self.stage_relus()}
        if tables:
            out["sites"] = [{**asdict(s), "shape": list(s.shape)} for s in self.sites]
            out["layers"] = [{**asdict(lc.layer), "macs": lc.macs, "params": lc.params} for lc in self.layers]
        return out


def _layer_cost(layer: Layer) -> LayerCost:
    if layer.kind == "conv":
        params = layer.c_in * layer.c_out * layer.kernel**2
        return LayerCost(layer, params * layer.h_out**2, params)
    if layer.kind == "bn":
        return LayerCost(layer, 0, 2 * layer.c_in)
    return LayerCost(layer, layer.c_in * layer.c_out, layer.c_in * layer.c_out + layer.c_out)  # fc


def count(spec: ArchSpec) -> Cost:
    """Exact ReLU / poly / MAC / parameter count of ``spec`` (per single-image inference)."""
    sites = []
    poly_params = 0
    for site, (_, act) in zip(spec.sites(), spec.acts):
        n = site.numel
        if act.mask is not None:
            kept = act.mask.kept * (n // site.channels if act.mask.granularity == "channel" else 1)
            relus, polys, kind = kept, (n - kept if act.off == "poly" else 0), "masked"
            poly_params += 3 * site.channels if act.off == "poly" else 0
        elif act.kind == "relu":
            relus, polys, kind = n, 0, "relu"
        elif act.kind == "poly":
            relus, polys, kind = 0, n, "poly"
            poly_params += 3 * site.channels
        else:
            relus, polys, kind = 0, 0, "identity"
        sites.append(SiteCost(site.name, site.stage, kind, (site.channels, site.height, site.width), relus, polys))
    layers = tuple(_layer_cost(layer) for layer in spec.layers())
    return Cost(
        relus=sum(s.relus for s in sites),
        polys=sum(s.polys for s in sites),
        macs=sum(lc.macs for lc in layers),
        params=sum(lc.params for lc in layers) + poly_params,
        sites=tuple(sites),
        layers=layers,
    )
