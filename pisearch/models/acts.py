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
        c = self.coef.view(1, -1, 3, *([1] * (x.dim() - 2)))
        return (c[:, :, 0] * x + c[:, :, 1]) * x + c[:, :, 2]


class MaskedAct(nn.Module):
    """ReLU where ``keep`` is true, ``off`` (identity or a per-channel Poly) elsewhere.

    ``keep`` has shape ``(C,)`` (per-channel) or ``(C, H, W)`` (per-pixel) and is a fixed buffer.
    """

    def __init__(self, keep: torch.Tensor, off: str = "identity") -> None:
        super().__init__()
        keep = keep.bool()
        self.register_buffer("keep", keep.view(-1, 1, 1) if keep.dim() == 1 else keep)
        self.off = Poly(keep.shape[0]) if off == "poly" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.keep, torch.relu(x), self.off(x))


def make_act(act: Act, site: Site) -> nn.Module:
    """The module computing ``act`` at ``site``."""
    if act.mask is not None:
        return MaskedAct(torch.from_numpy(act.mask.to_array()), act.off)
    if act.kind == "relu":
        return nn.ReLU()
    if act.kind == "poly":
        return Poly(site.channels)
    return nn.Identity()
