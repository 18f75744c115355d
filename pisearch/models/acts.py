"""Activation modules, one per activation kind, and ``make_act`` that picks one for a spec site."""

from __future__ import annotations

import math

import torch
from torch import nn

from pisearch.spec import Act, Site

# Least-squares degree-2 fit of ReLU for pre-activations ~ N(0, 1) (AutoReP's DaPa with μ=0, σ=1):
# c2 = c0 = 1 / (2·sqrt(2π)), c1 = 1/2. A safe start for a poly site that follows a BatchNorm.
POLY_INIT = (1.0 / (2.0 * math.sqrt(2.0 * math.pi)), 0.5, 1.0 / (2.0 * math.sqrt(2.0 * math.pi)))


class Poly(nn.Module):
    """Degree-2 polynomial ``c2·x² + c1·x + c0`` with trainable per-channel coefficients."""

    def __init__(self, channels: int, init: tuple[float, float, float] = POLY_INIT) -> None:
        super().__init__()
        self.coef = nn.Parameter(torch.tensor(init, dtype=torch.float32).repeat(channels, 1))  # (C, 3): c2 c1 c0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return poly(x, self.coef)


def poly(x: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """``c2·x² + c1·x + c0`` elementwise, with ``coef`` of shape ``(K, 3)`` (c2 c1 c0) indexed by dim 1 of ``x``."""
    c = coef.view(1, -1, 3, *([1] * (x.dim() - 2)))
    return (c[:, :, 0] * x + c[:, :, 1]) * x + c[:, :, 2]


class MaskedAct(nn.Module):
    """ReLU where ``keep`` is true, ``off`` (identity or a per-channel Poly) elsewhere.

    ``keep`` has shape ``(C,)`` (per-channel) or ``(C, H, W)`` (per-pixel) and is a fixed buffer. The forward
    pass gathers the kept channels (or flattened positions), applies ReLU to those only, applies ``off`` to the
    rest and puts both back in place, so a traced or ONNX-exported graph evaluates exactly ``kept`` ReLUs per
    image (Gather → Relu / Gather → off → Concat → Gather), never a ReLU over every element.
    """

    def __init__(self, keep: torch.Tensor, off: str = "identity") -> None:
        super().__init__()
        keep = keep.bool()
        self.register_buffer("keep", keep.view(-1, 1, 1) if keep.dim() == 1 else keep)
        self.off = Poly(keep.shape[0]) if off == "poly" else nn.Identity()
        self.per_channel = keep.dim() == 1
        self.unit_shape = tuple(keep.shape)  # (C, H, W) that a per-pixel forward restores after flattening
        flat = keep.flatten()
        self.kept = int(flat.sum())  # ReLUs per image for a per-pixel mask; kept channels for a per-channel one
        self.dropped = flat.numel() - self.kept
        on, dropped = flat.nonzero().flatten(), (~flat).nonzero().flatten()
        # Derived from ``keep`` (not saved in state dicts): gather indices, the channel of each dropped unit (for
        # its Poly coefficients) and the permutation that restores the original order after [on, dropped].
        self.register_buffer("on_index", on, persistent=False)
        self.register_buffer("off_index", dropped, persistent=False)
        self.register_buffer("off_channel", dropped // (flat.numel() // keep.shape[0]), persistent=False)
        self.register_buffer("order", torch.cat([on, dropped]).argsort(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x if self.per_channel else x.flatten(1)  # units along dim 1: channels, or C·H·W positions
        parts = []
        if self.kept:
            parts.append(torch.relu(z.index_select(1, self.on_index)))
        if self.dropped:
            rest = z.index_select(1, self.off_index)
            if isinstance(self.off, Poly):
                rest = poly(rest, self.off.coef.index_select(0, self.off_channel))
            parts.append(rest)
        y = parts[0] if len(parts) == 1 else torch.cat(parts, 1).index_select(1, self.order)
        return y if self.per_channel else y.view(-1, *self.unit_shape)


def make_act(act: Act, site: Site) -> nn.Module:
    """The module computing ``act`` at ``site``."""
    if act.mask is not None:
        return MaskedAct(torch.from_numpy(act.mask.to_array()), act.off)
    if act.kind == "relu":
        return nn.ReLU()
    if act.kind == "poly":
        return Poly(site.channels)
    return nn.Identity()
