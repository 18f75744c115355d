"""Linearization settings (validated by pydantic): the shared training knobs and one block per method.

The papers search and finetune for hundreds of CIFAR epochs (≈390 steps each); a pisearch run has tens of
steps per epoch and a few epochs. What is scaled down, and how, is said on each field; everything else is the
papers' value (../shared/REFERENCES.md §3). Measured on ``digits`` 16², ResNet 16-32-64 (one block per stage,
18,432 ReLUs), budget 5 %, 6 search + 4 finetune epochs (``benchmarks/linearize.py``):

* ``snl.lambda0`` 1e-3: with SNL's 1e-5 the L1 term is too weak for a 120-step search — #(α > 0.01) is still
  14,412 at the end and the hard threshold cuts blindly (validation top-1 0.455 before finetune, test 0.933
  after, finetune lr 1e-2); 1e-4: 8,996 (0.888, 0.983); 1e-3: 1,767 (0.951, 0.989).
* ``finetune_lr`` 0.05 (SGD, cosine): naive baseline test top-1 0.493 at 1e-3 (the papers' value, made for 100
  epochs), 0.858 at 1e-2, 0.936 at 5e-2; SNL 0.989 → 0.994, coordinate descent 0.861 → 0.947 (1e-2 → 5e-2).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pisearch.config import ConfigModel


class SNLSettings(ConfigModel):
    """SNL's L1 schedule: λ·Σ|α| with λ ← growth·λ after every round (after the first ``patience`` rounds) that
    sets no new low of #(α > threshold). SNL's round is one CIFAR epoch; ours is ``1/rounds_per_epoch`` epoch,
    so the schedule keeps its shape but gets enough rounds inside a short search."""

    lambda0: float = Field(1e-3, gt=0, description="initial L1 weight (SNL: 1e-5 over hundreds of epochs)")
    growth: float = Field(1.1, ge=1, description="λ multiplier after a round without a new low (SNL: 1.1)")
    patience: int = Field(5, ge=0, description="rounds before λ may grow (SNL: 5 epochs)")
    threshold: float = Field(0.01, gt=0, description="α above this counts as a kept ReLU (SNL: 0.01)")
    rounds_per_epoch: int = Field(4, ge=1, description="count checks / λ updates per epoch (SNL: 1)")


class AutoRePSettings(ConfigModel):
    """AutoReP: λ·max(0, density − budget/total), hysteresis threshold t, DaPa refits from running statistics
    every ``dapa_every`` steps during the first ``dapa_steps`` steps (the code: every 10 of the first ≈500
    iterations), then the coefficients train freely."""

    penalty: float = Field(140.0, gt=0, description="λ of the density penalty (ResNet18 CIFAR-100 at 9K: 140)")
    threshold: float = Field(0.003, ge=0, description="hysteresis half-width t on the score")
    dapa_every: int = Field(10, ge=1, description="steps between DaPa refits")
    dapa_steps: int = Field(50, ge=0, description="DaPa refits happen during the first N search steps")
    min_std: float = Field(0.1, gt=0, description="σ floor of the DaPa fit (the code clips the variance)")


class CDSettings(ConfigModel):
    """Coordinate descent on the binary mask: blocks of ``block`` ReLUs (default: the excess over the budget split
    into ``rounds`` blocks), up to ``tries`` random blocks per round, accept the first whose removal drops
    validation top-1 by < ``tau`` points, else the smallest drop followed by ``finetune_steps`` KD steps."""

    block: int | None = Field(None, ge=1, description="ReLUs per block (paper grid 100–2000 on 491K)")
    rounds: int = Field(20, ge=1, description="blocks from the full count to the budget when block is None")
    tries: int = Field(20, ge=1, description="random blocks tried per round (paper grid 20, 50, 100)")
    tau: float = Field(1.0, ge=0, description="accepted drop in validation top-1, points (paper grid 0.3–1.5)")
    finetune_steps: int | None = Field(None, ge=1, description="KD steps after a block over tau (default: "
                                       "search_epochs' steps spread over the rounds; paper: 20 epochs)")


class LinearizeSettings(ConfigModel):
    """How a method searches and finetunes. ``search_epochs`` bounds every method's search (SNL stops earlier
    when its count reaches the budget; CD spends it on its between-block finetunes); ``finetune_epochs`` is the
    same final KD finetune for every method (the papers' 100 epochs, scaled down)."""

    search_epochs: int = Field(10, ge=0, description="search-phase epochs (SNL/AutoReP mask training, CD "
                               "finetunes)")
    finetune_epochs: int = Field(5, ge=0, description="final finetune with masks frozen")
    batch_size: int = Field(64, ge=2, description="images per step (papers: 128)")
    augment: bool = Field(False, description="random crop + flip of training batches (pisearch.train.batches)")
    search_lr: float = Field(1e-3, gt=0, description="Adam learning rate of the weights during SNL / AutoReP "
                             "search (papers: 1e-3)")
    mask_lr: float | None = Field(None, gt=0, description="Adam learning rate of α / scores; None: 2 / search "
                                  "steps clipped to [1e-3, 0.1], so a mask parameter can cross its initial range "
                                  "within a short search (papers: 1e-3 over ~10⁵ steps)")
    finetune_lr: float = Field(0.05, gt=0, description="SGD learning rate of finetunes, cosine to 0 (papers: 1e-3 "
                               "over 100 epochs)")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    grad_clip: float | None = Field(1.0, gt=0, description="clip the global gradient norm (keeps poly sites "
                                    "stable); None: off")
    kd: bool = Field(True, description="distil from the un-linearized network: CE + KL(T)·T², weight 1:1")
    temperature: float = Field(4.0, gt=0, description="KD temperature T")
    bn_recalibrate: bool = Field(True, description="re-estimate BN statistics before the final validation")
    eval_batch_size: int = Field(512, ge=1)
    seed: int = Field(0, description="batch order, augmentation, random scores and blocks")
    device: str = Field("cpu", description="torch device of the search and finetune")
    snl: SNLSettings = SNLSettings()
    autorep: AutoRePSettings = AutoRePSettings()
    cd: CDSettings = CDSettings()

    def search_mask_lr(self, search_steps: int) -> float:
        """The Adam learning rate of mask parameters for a search of ``search_steps`` steps."""
        if self.mask_lr is not None:
            return self.mask_lr
        return min(0.1, max(1e-3, 2.0 / max(1, search_steps)))


Granularity = Literal["pixel", "channel"]
