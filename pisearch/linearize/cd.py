"""Coordinate-descent linearization (Rakhlin, Jevnisek & Avidan, arXiv 2511.11781; precursor code
ajevnisek/selective_network_linearization, ``optimize_and_reduce_snl.py``): search directly on the binary mask.

While the count exceeds the budget: draw up to ``tries`` random blocks of ``block`` ReLUs among the kept units,
accept the first whose removal drops validation top-1 by less than ``tau`` points, else the block with the
smallest drop; switch it to identity. After a block taken by the smallest drop (its drop ≥ tau), finetune
with KD, as the precursor code does. The last block is sized to the ReLUs still over the budget, so the count
lands exactly on it (pixel granularity) or below it by less than one channel's H×W (channel granularity) — no
hard threshold. The decisions use the validation split (the precursor used the training set; on small data
held-out accuracy is the honest signal), and every validation pass is charged to the search compute
(``Trainer.judge``): a round tries a second or later block only while the search compute left covers it and
one evaluation per later round, and a between-block finetune gets what is left after those evaluations, shared
over the rounds left, so the search spends about ``search_epochs`` of steps (more only when the one try every
round needs exceeds it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pisearch.linearize.base import (Job, MaskSite, Selection, UnitIndex, greedy_fill, install_gates,
                                     register_method)
from pisearch.linearize.settings import EVAL_COST


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


def compute_left(job: Job, later_rounds: int, try_cost: float) -> float:
    """Search compute (training steps) not yet spent, less one evaluation of ``try_cost`` per later round."""
    return job.search_steps - job.trainer.spent - later_rounds * try_cost


def finetune_length(job: Job, later_rounds: int, try_cost: float) -> int:
    """Steps of a between-block finetune: ``cd.finetune_epochs``' worth, or the compute left after the
    evaluation that follows it and one per later round, shared over this round and the later ones."""
    if job.settings.cd.finetune_epochs is not None:
        return job.trainer.steps(job.settings.cd.finetune_epochs)
    return max(0, int((compute_left(job, later_rounds, try_cost) - try_cost) / (later_rounds + 1)))


def taken_index(drops: Sequence[float], tau: float) -> int:
    """The try a round takes: its last one when that is under ``tau`` (the round stops at the first such), else
    the one with the smallest drop (the first of equals)."""
    return len(drops) - 1 if drops[-1] < tau else min(range(len(drops)), key=drops.__getitem__)


@register_method("cd", off="identity")
def coordinate_descent(job: Job) -> Selection:
    """Coordinate descent: remove random blocks of ReLUs by validation drop, finetune when over tau; no threshold."""
    cfg, trainer = job.settings.cd, job.trainer
    model = install_gates(job.model, job.sites, MaskGate)
    units = UnitIndex(job.sites)
    gates = {site.name: model.get_submodule(site.name) for site in job.sites}
    keep = units.flat({site.name: site.keep for site in job.sites})
    try_cost = len(trainer.data.val) * EVAL_COST / trainer.batch_size
    g = torch.Generator().manual_seed(job.settings.seed)

    def apply(flat: torch.Tensor) -> None:
        parts = units.split(flat)
        for site in job.sites:
            gates[site.name].keep.copy_(parts[site.name].view(site.gate_shape))

    def try_blocks(need: int, later_rounds: int, accuracy: float) -> list[tuple[float, torch.Tensor, float]]:
        """Up to ``tries`` random blocks of at most ``need`` ReLUs, each judged on validation: (drop in points,
        block, top-1 without it). Stops at the first drop under tau, at the forced last unit, or when the
        search compute left no longer covers a further pass plus one per later round."""
        tried = []
        for k in range(cfg.tries):
            if k and compute_left(job, later_rounds, try_cost) < try_cost:
                break
            block = draw_block(keep, units.weights, need, g)
            apply(keep & ~block)
            top1 = trainer.judge(model)
            tried.append((100 * (accuracy - top1), block, top1))
            if tried[-1][0] < cfg.tau or int(units.weights[block].sum()) > need:
                break
        return tried

    count = int(units.weights[keep].sum())
    block_relus = cfg.block or math.ceil((count - job.budget) / cfg.rounds)
    accuracy = trainer.judge(model)
    drops: list[list[float]] = []
    taken: list[int] = []
    finetunes: list[int] = []
    while count > job.budget:
        need = min(block_relus, count - job.budget)
        later_rounds = math.ceil((count - need - job.budget) / block_relus)
        tried = try_blocks(need, later_rounds, accuracy)
        drops.append([round(d, 3) for d, _, _ in tried])
        taken.append(taken_index([d for d, _, _ in tried], cfg.tau))
        drop, block, accuracy = tried[taken[-1]]
        keep = keep & ~block
        apply(keep)
        count = int(units.weights[keep].sum())
        if drop >= cfg.tau:
            finetunes.append(finetune_length(job, later_rounds, try_cost))
            if finetunes[-1]:
                trainer.finetune(model, finetunes[-1])
                accuracy = trainer.judge(model)
    details = {"block_relus": block_relus, "rounds": len(drops), "tries": sum(map(len, drops)),
               "accepted_by_tau": sum(d[t] < cfg.tau for d, t in zip(drops, taken)), "finetune_steps": finetunes,
               "drops": drops, "taken": taken}
    return Selection(units.split(keep), model, details=details)
