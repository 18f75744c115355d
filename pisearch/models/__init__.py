"""Spec → ``nn.Module`` (never imports optuna)."""

from __future__ import annotations

from pisearch.models.acts import MaskedAct, Poly, make_act, poly
from pisearch.models.resnet import ResNet
from pisearch.spec import ArchSpec


def build(spec: ArchSpec, zero_init_residual: bool = False) -> ResNet:
    """Build the network ``spec`` describes; activation modules are at ``model.get_submodule(site)``."""
    model = ResNet(spec)
    if zero_init_residual:
        model.zero_init_residual()
    return model


__all__ = ["MaskedAct", "Poly", "ResNet", "build", "make_act", "poly"]
