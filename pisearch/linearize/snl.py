"""SNL — Selective Network Linearization (Cho et al., ICML 2022; code NYU-DICE-Lab/selective_network_linearization).

Every maskable site computes y = α⊙ReLU(x) + (1−α)⊙x with one trainable α per unit (init 1, no clamp). Adam
trains weights and α together on CE + KD + λ·Σ|α| (α weighted by its granule, so the penalty is in ReLUs; for
pixel granularity that is SNL's Σ|α|). After every round (one epoch in SNL, ``round_steps`` steps in a short
run) the count #(α > 0.01) is taken; after the first ``patience`` rounds, a round that sets no new low
multiplies λ by ``growth``; the search stops when the count is within the budget (or ``search_epochs`` run
out). Then the hard threshold keeps exactly the top-B α (ReLU where kept, identity elsewhere), and the common
finetune trains with the masks frozen.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pisearch.linearize.base import Job, MaskSite, Selection, install_gates, register_method, select_budget
from pisearch.linearize.settings import SNLSettings


class AlphaGate(nn.Module):
    """y = α⊙ReLU(x) + (1−α)⊙x with one α per unit; units the input spec had off stay identity."""

    def __init__(self, site: MaskSite) -> None:
        super().__init__()
        allowed = site.keep.view(site.gate_shape).float()
        self.register_buffer("allowed", allowed)
        self.alpha = nn.Parameter(allowed.clone())
        self.granule = site.granule

    def effective(self) -> torch.Tensor:
        return self.alpha * self.allowed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.effective() * (torch.relu(x) - x)

    def l1(self) -> torch.Tensor:
        """Σ|α| over allowed units, in ReLUs (each α weighted by its granule)."""
        return self.effective().abs().sum() * self.granule

    def count(self, threshold: float) -> int:
        """ReLUs whose α exceeds ``threshold`` (SNL's soft count)."""
        return int(((self.effective() > threshold) & (self.allowed > 0)).sum()) * self.granule


class LassoSchedule:
    """SNL's λ: starts at ``lambda0``; after each round from round ``patience`` on (0-based), a round whose count
    sets no new low multiplies it by ``growth``."""

    def __init__(self, cfg: SNLSettings) -> None:
        self.cfg, self.value, self.lowest, self.rounds = cfg, cfg.lambda0, math.inf, 0

    def update(self, count: int) -> None:
        if count < self.lowest:
            self.lowest = count
        elif self.rounds >= self.cfg.patience:
            self.value *= self.cfg.growth
        self.rounds += 1


@register_method("snl", off="identity")
def snl(job: Job) -> Selection:
    """SNL: trainable α per unit, L1 schedule until #(α > 0.01) ≤ B, top-B hard threshold, frozen masks."""
    s, cfg, trainer = job.settings, job.settings.snl, job.trainer
    model = install_gates(job.model, job.sites, AlphaGate).to(trainer.device, memory_format=torch.channels_last)
    gates = [model.get_submodule(site.name) for site in job.sites]
    alphas = {id(g.alpha) for g in gates}
    steps = job.search_steps
    opt = torch.optim.Adam([
        {"params": [p for p in model.parameters() if id(p) not in alphas], "lr": s.search_lr},
        {"params": [g.alpha for g in gates], "lr": s.search_mask_lr(steps, cosine=False)},
    ])
    lam = LassoSchedule(cfg)
    round_steps = cfg.round_steps or trainer.steps_per_epoch
    counts: list[int] = []
    lambdas: list[float] = []
    done = 0
    while done < steps:
        lambdas.append(lam.value)
        done += trainer.train(model, opt, min(round_steps, steps - done),
                              penalty=lambda: lam.value * sum(g.l1() for g in gates))
        counts.append(sum(g.count(cfg.threshold) for g in gates))
        lam.update(counts[-1])
        if counts[-1] <= job.budget:
            break
    scores = {site.name: g.effective().detach().reshape(site.unit_shape) for site, g in zip(job.sites, gates)}
    keeps = select_budget(scores, job.sites, job.budget)
    details = {"search_steps": done, "rounds": len(counts), "soft_counts": counts, "lambdas": lambdas,
               "accuracy_soft": trainer.accuracy(model),  # validation top-1 before the hard threshold (not charged)
               "reached_budget": bool(counts) and counts[-1] <= job.budget}
    return Selection(keeps, model, details=details)
