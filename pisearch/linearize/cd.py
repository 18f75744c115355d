"""Coordinate-descent linearization (Rakhlin, Jevnisek & Avidan, arXiv 2511.11781; precursor code
ajevnisek/selective_network_linearization, ``optimize_and_reduce_snl.py``): search directly on the binary mask.

While the count exceeds the budget: draw up to ``tries`` random blocks of ``block`` ReLUs among the kept units,
accept the first whose removal drops validation top-1 by less than ``tau`` points, else the block with the
smallest drop; switch it to identity. After a block accepted by the smallest drop (its drop ≥ tau), finetune
``finetune_steps`` steps with KD, as the precursor code does. The last block is sized to the ReLUs still over
the budget, so the count lands exactly on it (pixel granularity) or below it by less than one channel's H×W
(channel granularity) — no hard threshold. The decisions use the validation split (the precursor used the
training set; on small data held-out accuracy is the honest signal).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pisearch.linearize.base import (Job, MaskSite, Selection, UnitIndex, greedy_fill, install_gates,
                                     register_method)


class MaskGate(nn.Module):
    """ReLU where ``keep``, identity elsewhere, elementwise (the search-time form of a masked site)."""

    def __init__(self, site: MaskSite) -> None:
        super().__init__()
        self.register_buffer("keep", site.keep.view(site.gate_shape).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.keep, torch.relu(x), x)


def draw_block(keep: torch.Tensor, weights: torch.Tensor, need: int, generator: torch.Generator) -> torch.Tensor:
    """Random kept units (bool over all units) whose ReLUs total at most ``need``, as close to it as the units
    allow; when no kept unit fits, the smallest kept unit alone (the last block overshoots by less than it)."""
    active = keep.nonzero().flatten()
    block = greedy_fill(active[torch.randperm(len(active), generator=generator)], weights, need)
    if not block.any():
        block[active[weights[active].argmin()]] = True
    return block


@register_method("cd", off="identity")
def coordinate_descent(job: Job) -> Selection:
    """Coordinate descent: remove random blocks of ReLUs by validation drop, finetune when over tau; no threshold."""
    cfg, trainer = job.settings.cd, job.trainer
    model = install_gates(job.model, job.sites, MaskGate)
    units = UnitIndex(job.sites)
    gates = {site.name: model.get_submodule(site.name) for site in job.sites}
    keep = units.flat({site.name: site.keep for site in job.sites})

    def apply(flat: torch.Tensor) -> None:
        parts = units.split(flat)
        for site in job.sites:
            gates[site.name].keep.copy_(parts[site.name].view(site.gate_shape))

    count = int(units.weights[keep].sum())
    block_relus = cfg.block or math.ceil((count - job.budget) / cfg.rounds)
    finetune_steps = cfg.finetune_steps or max(1, job.search_steps // cfg.rounds)
    g = torch.Generator().manual_seed(job.settings.seed)
    accuracy = trainer.accuracy(model)
    rounds, by_threshold, tries_used = 0, 0, 0
    while count > job.budget:
        need = min(block_relus, count - job.budget)
        best = None
        for _ in range(cfg.tries):
            block = draw_block(keep, units.weights, need, g)
            apply(keep & ~block)
            tried = trainer.accuracy(model)
            drop = 100 * (accuracy - tried)
            tries_used += 1
            if best is None or drop < best[0]:
                best = (drop, block, tried)
            if drop < cfg.tau or int(units.weights[block].sum()) > need:  # accepted, or the forced last unit
                break
        drop, block, accuracy = best
        keep = keep & ~block
        apply(keep)
        count = int(units.weights[keep].sum())
        rounds += 1
        if drop < cfg.tau:
            by_threshold += 1
        else:
            trainer.finetune(model, finetune_steps)
            accuracy = trainer.accuracy(model)
    details = {"block_relus": block_relus, "rounds": rounds, "accepted_by_tau": by_threshold,
               "finetunes": rounds - by_threshold, "finetune_steps_each": finetune_steps, "tries": tries_used}
    return Selection(units.split(keep), model, details=details)
