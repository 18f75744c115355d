"""Count activations by running the model: the independent check of ``pisearch.cost.count``.

Forward hooks on every ``nn.ReLU``, :class:`Poly` and :class:`MaskedAct` record what one image actually
evaluates. Used by tests and by exports to prove that the analytic count is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pisearch.models.acts import MaskedAct, Poly


@dataclass
class HookCount:
    """Per-image ReLU and polynomial evaluations seen by hooks, in total and per module path."""

    relus: int
    polys: int
    per_module: dict[str, tuple[int, int]]


def count_by_hooks(model: nn.Module, input_shape: tuple[int, int, int]) -> HookCount:
    """Run one zero image of ``input_shape`` (C, H, W) and count scalar ReLU / poly evaluations."""
    per_module: dict[str, tuple[int, int]] = {}
    handles = []
    masked_polys = {id(m.off) for m in model.modules() if isinstance(m, MaskedAct)}

    def hook(name: str, module: nn.Module):
        def fn(_mod, inputs, _out):
            x = inputs[0][0]  # one image
            if isinstance(module, nn.ReLU):
                counts = (x.numel(), 0)
            elif isinstance(module, MaskedAct):
                kept = int(module.keep.expand_as(x).sum())
                counts = (kept, x.numel() - kept if isinstance(module.off, Poly) else 0)
            else:  # a Poly not nested in a MaskedAct
                counts = (0, x.numel())
            per_module[name] = counts
        return fn

    for name, module in model.named_modules():
        if isinstance(module, (nn.ReLU, MaskedAct)) or (isinstance(module, Poly) and id(module) not in masked_polys):
            handles.append(module.register_forward_hook(hook(name, module)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return HookCount(
        relus=sum(r for r, _ in per_module.values()), polys=sum(p for _, p in per_module.values()),
        per_module=per_module,
    )
