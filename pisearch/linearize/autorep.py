"""AutoReP (Peng et al., ICCV 2023; code harveyp123/AutoReP): a binary mask per unit chooses between ReLU and a
per-channel degree-2 polynomial fitted to the site's pre-activation distribution (DaPa).

Each unit has a trainable score a (init U(0, 1)) and a binary mask m (init 1). After every optimizer step the
mask follows the hysteresis update m ← m·[a > −t] + (1 − m)·[a > t]; the forward pass uses m through a
straight-through estimator whose gradient is ∂L/∂a = softplus(a)·∂L/∂m (the code's ``STEFunction_relay``).
y = m⊙ReLU(x) + (1 − m)⊙p(x), p(x) = c2·x² + c1·x + c0 per channel. Loss = CE + KD + λ·max(0, density − B/total)
with density = kept ReLUs / ReLUs of the input spec. Adam trains weights, coefficients and scores, cosine
schedule. The selection is then made exact: the top-B units ranked first by m, then by a.

DaPa: for pre-activations ~ N(μ, σ²) the least-squares degree-2 fit of ReLU is, with φ = exp(−μ²/(2σ²)),
c2 = φ/(2√(2π)σ), c1 = Φ(μ/σ) − μφ/(√(2π)σ), c0 = φ(μ²/σ + σ)/(2√(2π)). The coefficients start from exact
statistics of the input network (512 training images), are refitted from running statistics (momentum 0.1)
during the first ``dapa_steps`` steps, then train freely. pisearch uses σ = √variance (the code passes the
running *variance* where its formulas take σ) and multiplies the fitted c2 by ``x2_scale`` (default 0.01): the
code stores c2/10 (and c0/5) and multiplies the x² term by ``scale_x2`` = 0.1 in the forward pass, so its
polynomials are 100× flatter than the least-squares fit. Measured (settings.py): with the plain fit a ≈ 99 %
polynomial ResNet overflows to NaN logits within one short search (test 0.10); with 0.01: 0.89 at 1 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pisearch.linearize.base import Job, MaskSite, Selection, install_gates, register_method, select_budget
from pisearch.linearize.settings import AutoRePSettings
from pisearch.models import poly

CALIBRATION_IMAGES = 512
STATS_MOMENTUM = 0.1


def dapa(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Least-squares degree-2 fit of ReLU under N(mean, std²), per channel: ``(C, 3)`` as (c2, c1, c0)."""
    mean, std = mean.double(), std.double()
    phi = torch.exp(-mean**2 / (2 * std**2))
    root = math.sqrt(2 * math.pi)
    c2 = phi / (2 * root * std)
    c1 = 0.5 * (1 + torch.erf(mean / (std * math.sqrt(2)))) - mean * phi / (root * std)
    c0 = phi * (mean**2 / std + std) / (2 * root)
    return torch.stack([c2, c1, c0], 1).float()


def hysteresis(mask: torch.Tensor, score: torch.Tensor, threshold: float) -> torch.Tensor:
    """AutoReP's mask update: a kept unit is dropped when its score falls to −t or below, a dropped unit comes
    back when its score rises above t."""
    return mask * (score > -threshold).to(mask.dtype) + (1 - mask) * (score > threshold).to(mask.dtype)


class StraightThroughMask(torch.autograd.Function):
    """Forward: the binary ``mask``; backward: ∂L/∂score = softplus(score)·∂L/∂mask."""

    @staticmethod
    def forward(ctx, score: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(score)
        return mask.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (score,) = ctx.saved_tensors
        return F.softplus(score) * grad, None


class HysteresisGate(nn.Module):
    """y = m⊙ReLU(x) + (1 − m)⊙p(x) with a score and a hysteresis mask per unit and DaPa coefficients per channel;
    units the input spec had off stay polynomial."""

    def __init__(self, site: MaskSite, cfg: AutoRePSettings, generator: torch.Generator) -> None:
        super().__init__()
        self.cfg, self.granule = cfg, site.granule
        allowed = site.keep.view(site.gate_shape).float()
        self.register_buffer("allowed", allowed)
        self.register_buffer("mask", allowed.clone())
        self.score = nn.Parameter(torch.rand(site.gate_shape, generator=generator))
        self.coef = nn.Parameter(torch.zeros(site.channels, 3))
        self.register_buffer("mean", torch.zeros(site.channels))
        self.register_buffer("var", torch.ones(site.channels))
        self.tracking = True

    def gate(self) -> torch.Tensor:
        return StraightThroughMask.apply(self.score, self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.tracking:
            with torch.no_grad():
                dims = (0, 2, 3)
                self.mean.lerp_(x.mean(dims), STATS_MOMENTUM)
                self.var.lerp_(x.var(dims), STATS_MOMENTUM)
        m = self.gate()
        return m * torch.relu(x) + (1 - m) * poly(x, self.coef)

    @torch.no_grad()
    def refit(self) -> None:
        """Set the coefficients to the DaPa fit of the running statistics, its x² term scaled by ``x2_scale``."""
        coef = dapa(self.mean, self.var.sqrt().clamp(min=self.cfg.min_std))
        coef[:, 0] *= self.cfg.x2_scale
        self.coef.copy_(coef)

    @torch.no_grad()
    def update_mask(self) -> None:
        self.mask.copy_(hysteresis(self.mask, self.score, self.cfg.threshold) * self.allowed)

    def relus(self) -> torch.Tensor:
        """Kept ReLUs through the straight-through mask (differentiable in the scores)."""
        return (self.gate() * self.allowed).sum() * self.granule


@torch.no_grad()
def calibrate(model: nn.Module, gates: Sequence[HysteresisGate], job: Job) -> None:
    """Exact per-channel mean and variance of every gate's input over the first training images (eval mode),
    then a DaPa fit of each gate."""
    sums: dict[int, list[torch.Tensor]] = {}

    def hook(gate, inputs):
        x = inputs[0].double()
        acc = sums.setdefault(id(gate), [0, 0, 0])
        acc[0] = acc[0] + x.sum((0, 2, 3))
        acc[1] = acc[1] + (x * x).sum((0, 2, 3))
        acc[2] += x.numel() // x.shape[1]

    handles = [g.register_forward_pre_hook(hook) for g in gates]
    images, n = job.trainer.images, min(CALIBRATION_IMAGES, len(job.trainer.images))
    model.eval()
    try:
        for i in range(0, n, job.settings.eval_batch_size):
            model(images.batch(torch.arange(i, min(i + job.settings.eval_batch_size, n), device=images.device)))
    finally:
        for h in handles:
            h.remove()
    for g in gates:
        total, squares, count = sums[id(g)]
        mean = total / count
        g.mean.copy_(mean)
        g.var.copy_((squares / count - mean * mean).clamp(min=0))
        g.refit()


@register_method("autorep", off="poly")
def autorep(job: Job) -> Selection:
    """AutoReP: hysteresis masks with straight-through scores, ReLU or DaPa polynomial per unit, density penalty."""
    s, cfg, trainer = job.settings, job.settings.autorep, job.trainer
    g = torch.Generator().manual_seed(s.seed)
    model = install_gates(job.model, job.sites, lambda site: HysteresisGate(site, cfg, g))
    model.to(trainer.device, memory_format=torch.channels_last)
    gates = [model.get_submodule(site.name) for site in job.sites]
    calibrate(model, gates, job)
    scores = {id(gate.score) for gate in gates}
    steps = job.search_steps
    opt = torch.optim.Adam([
        {"params": [p for p in model.parameters() if id(p) not in scores], "lr": s.search_lr},
        {"params": [gate.score for gate in gates], "lr": s.search_mask_lr(steps, cosine=True)},
    ])
    total = sum(int(site.keep.sum()) * site.granule for site in job.sites)
    target = job.budget / total
    densities: list[float] = []

    def penalty() -> torch.Tensor:
        density = sum(gate.relus() for gate in gates) / total
        return cfg.penalty * torch.relu(density - target)

    def after_step(step: int) -> None:
        refit = step < cfg.dapa_steps and (step + 1) % cfg.dapa_every == 0
        for gate in gates:
            gate.update_mask()
            gate.tracking = step + 1 < cfg.dapa_steps
            if refit:
                gate.refit()
        if (step + 1) % trainer.steps_per_epoch == 0:
            densities.append(round(sum(float((gt.mask * gt.allowed).sum()) * gt.granule for gt in gates) / total, 4))

    trainer.train(model, opt, steps, cosine=True, penalty=penalty, after_step=after_step)
    # Rank kept units (m = 1) above dropped ones, then by score: the offset exceeds any score gap.
    offset = 2 * max(float(gate.score.detach().abs().max()) for gate in gates) + 1
    rank = {site.name: (gate.mask * offset + gate.score.detach()).reshape(site.unit_shape)
            for site, gate in zip(job.sites, gates)}
    keeps = select_budget(rank, job.sites, job.budget)
    kept_by_mask = sum(int((gate.mask * gate.allowed).sum()) * gate.granule for gate in gates)
    details = {"search_steps": steps, "density_per_epoch": densities, "target_density": round(target, 4),
               "mask_relus_before_exact": kept_by_mask}
    return Selection(keeps, model, coefs={site.name: gate.coef for site, gate in zip(job.sites, gates)},
                     details=details)
