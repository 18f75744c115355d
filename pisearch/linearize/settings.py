"""Linearization settings (validated by pydantic): the shared training knobs and one block per method.

Two presets. ``paper`` (``LinearizeSettings(preset="paper")``, ``pisearch linearize --preset paper``) is the
papers' own values (../shared/REFERENCES.md §3): hundreds of CIFAR epochs of search and 100 of finetune.
``short`` (the default) is what a pisearch run affords — a fraction of an epoch to a few epochs — with the
values below measured at that length; every field says its paper value. Explicit values override a preset.
Full log: benchmarks/results/linearize_fashion_mnist.md (``benchmarks/linearize.py``).

On ``digits`` 16², ResNet 16-32-64 (one block per stage, 18,432 ReLUs), budget 5 %, 6 search + 4 finetune epochs:

* ``snl.lambda0`` 1e-3: with SNL's 1e-5 the L1 term is too weak for a 120-step search — #(α > 0.01) is still
  14,412 at the end and the hard threshold cuts blindly (validation top-1 0.455 before finetune, test 0.933
  after, finetune lr 1e-2); 1e-4: 8,996 (0.888, 0.983); 1e-3: 1,767 (0.951, 0.989).
* ``finetune_lr`` 0.05 (SGD, cosine): naive baseline test top-1 0.493 at 1e-3 (the papers' value, made for 100
  epochs), 0.858 at 1e-2, 0.936 at 5e-2; SNL 0.989 → 0.994, coordinate descent 0.861 → 0.947 (1e-2 → 5e-2).

On ``fashion_mnist`` 32², ResNet 8-16-32-64 (2-2-2-2, 69,632 ReLUs, teacher test top-1 0.9317), budget 1 %
(696 ReLUs), seed 0, test top-1 on 10,000 images:

* ``autorep.x2_scale`` 0.01: with the plain least-squares x² coefficient the ≈ 99 % polynomial network
  overflows (residual-stream activations reach inf by layer4, NaN logits): test 0.1006; × 0.01 (the code's
  effective factor): 0.8904 (272 steps) — the fix that made AutoReP work at all.
* ``mask_reach`` 4 (was lr = 2 / steps, i.e. reach 2 for SNL and 1 under AutoReP's cosine): AutoReP's mask
  count at the end of a 272-step search 23,731 → 5,653 (target 696); SNL 0.8723 → 0.8748 (453 steps).
* ``cd.rounds`` 8, ``cd.tries`` 2 (were 20, 20): a 2,000-image validation pass costs 10.4 training steps, so 20
  rounds × 20 tries (every try dropped > tau) would cost ≈ 4,160 steps of a 453-step run; 8 × 2: 0.7944.
* ``snl.round_steps`` 10 (was 4 rounds per epoch): an epoch is 906 steps, so a 181-step search would have had
  one count check and a λ that never grew.
  ``snl.lambda0`` stays 1e-3: 1e-2 reaches the budget at step 60 (count 43, validation 0.7215 before the hard
  threshold) and ends at 0.8533 against 0.8637.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from pisearch.config import ConfigModel

PRESETS = ("short", "paper")
EVAL_COST = 1 / 3
"""Compute of one validation image's forward pass, in training images (forward + backward ≈ 3 forwards)."""


class SNLSettings(ConfigModel):
    """SNL's L1 schedule: λ·Σ|α| with λ ← growth·λ after every round (after the first ``patience`` rounds) that
    sets no new low of #(α > threshold). SNL's round is one epoch; a short run's is ``round_steps`` steps, so
    the schedule keeps its shape but gets enough rounds inside a short search."""

    lambda0: float = Field(1e-3, gt=0, description="initial L1 weight (SNL: 1e-5 over hundreds of epochs)")
    growth: float = Field(1.1, ge=1, description="λ multiplier after a round without a new low (SNL: 1.1)")
    patience: int = Field(5, ge=0, description="rounds before λ may grow (SNL: 5 epochs)")
    threshold: float = Field(0.01, gt=0, description="α above this counts as a kept ReLU (SNL: 0.01)")
    round_steps: int | None = Field(10, ge=1, description="steps per count check / λ update; None: one epoch "
                                    "(SNL)")


class AutoRePSettings(ConfigModel):
    """AutoReP: λ·max(0, density − budget/total), hysteresis threshold t, DaPa refits from running statistics
    every ``dapa_every`` steps during the first ``dapa_steps`` steps (the code: every 10 of the first ≈500
    iterations), then the coefficients train freely."""

    penalty: float = Field(140.0, gt=0, description="λ of the density penalty (ResNet18 CIFAR-100 at 9K: 140)")
    threshold: float = Field(0.003, ge=0, description="hysteresis half-width t on the score (AutoReP: 0.003)")
    dapa_every: int = Field(10, ge=1, description="steps between DaPa refits (AutoReP: 10)")
    dapa_steps: int = Field(50, ge=0, description="DaPa refits happen during the first N search steps "
                            "(AutoReP: ≈500)")
    min_std: float = Field(0.1, gt=0, description="σ floor of the DaPa fit (the code clips the variance)")
    x2_scale: float = Field(0.01, ge=0, description="factor on the fitted x² coefficient (the code: 0.01, its "
                            "w2/10 times scale_x2 = 0.1)")


class CDSettings(ConfigModel):
    """Coordinate descent on the binary mask: blocks of ``block`` ReLUs (default: the excess over the budget split
    into ``rounds`` blocks), up to ``tries`` random blocks per round, accept the first whose removal drops
    validation top-1 by < ``tau`` points, else the smallest drop followed by a KD finetune. Each try's
    validation pass is charged to the search compute (``EVAL_COST`` per image)."""

    block: int | None = Field(None, ge=1, description="ReLUs per block (precursor grid 100–2000 on 491K)")
    rounds: int = Field(8, ge=1, description="blocks from the full count to the budget when block is None")
    tries: int = Field(2, ge=1, description="random blocks tried per round (precursor grid 20, 50, 100)")
    tau: float = Field(1.0, ge=0, description="accepted drop in validation top-1, points (precursor grid "
                       "0.3–1.5)")
    finetune_epochs: float | None = Field(None, ge=0, description="KD finetune after a block over tau; None: "
                                          "the search compute left after evaluations, shared over the rounds "
                                          "left (precursor: 20 epochs)")


PAPER: dict[str, Any] = {
    "search_epochs": 200, "finetune_epochs": 100, "pool_compute": False, "batch_size": 128, "augment": True,
    "mask_lr": 1e-3, "finetune_lr": 1e-3, "grad_clip": None,
    "snl": {"lambda0": 1e-5, "growth": 1.1, "patience": 5, "threshold": 0.01, "round_steps": None},
    "autorep": {"penalty": 140.0, "threshold": 0.003, "dapa_every": 10, "dapa_steps": 500},
    "cd": {"block": 1000, "tries": 20, "tau": 1.0, "finetune_epochs": 20},
}
"""The papers' values (REFERENCES.md §3): SNL's and AutoReP's Adam 1e-3 on masks, SGD 1e-3 finetune for 100
epochs, batch 128, CIFAR augmentation, AutoReP's 200 epochs; coordinate descent from the precursor code's grids."""


def _merge(base: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` overridden by ``given``, one level of nested dicts merged (a given settings object replaces)."""
    out = dict(base)
    for key, value in given.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) \
            else value
    return out


class LinearizeSettings(ConfigModel):
    """How a method searches and finetunes. A run's compute is ``search_epochs + finetune_epochs`` of training
    steps: ``search_epochs`` bounds every method's search (SNL stops earlier when its count reaches the budget;
    CD spends it on its evaluations and between-block finetunes), and with ``pool_compute`` the final KD
    finetune gets whatever the search left, so every method spends the same total."""

    preset: Literal["short", "paper"] = Field("short", description="defaults: short (measured for short runs) "
                                              "or paper (the papers' values); explicit fields override")
    search_epochs: float = Field(10, ge=0, description="search-phase epochs (SNL/AutoReP mask training, CD "
                                 "evaluations and finetunes)")
    finetune_epochs: float = Field(5, ge=0, description="final finetune with masks frozen (papers: 100)")
    pool_compute: bool = Field(True, description="search steps a method does not use go to the final finetune "
                               "(equal total compute for every method; papers: off)")
    batch_size: int = Field(64, ge=2, description="images per step (papers: 128)")
    augment: bool = Field(False, description="random crop + flip of training batches (pisearch.train.batches)")
    search_lr: float = Field(1e-3, gt=0, description="Adam learning rate of the weights during SNL / AutoReP "
                             "search (papers: 1e-3)")
    mask_lr: float | None = Field(None, gt=0, description="Adam learning rate of α / scores; None: from "
                                  "mask_reach (papers: 1e-3 over ~10⁵ steps)")
    mask_reach: float = Field(4.0, gt=0, description="with mask_lr None, the Adam lr is mask_reach / Σ of the lr "
                              "schedule over the search (SNL constant: steps, AutoReP cosine: steps / 2), clipped to "
                              "[1e-3, 0.1]: how far a steadily pushed α (init 1) or score (init U(0, 1)) can move")
    finetune_lr: float = Field(0.05, gt=0, description="SGD learning rate of finetunes, cosine to 0 (papers: 1e-3 "
                               "over 100 epochs)")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    grad_clip: float | None = Field(1.0, gt=0, description="clip the global gradient norm (keeps poly sites "
                                    "stable); None: off (papers)")
    kd: bool = Field(True, description="distil from the un-linearized network: CE + KL(T)·T², weight 1:1")
    temperature: float = Field(4.0, gt=0, description="KD temperature T (papers: 4)")
    bn_recalibrate: bool = Field(True, description="re-estimate BN statistics before the final validation")
    eval_batch_size: int = Field(512, ge=1)
    seed: int = Field(0, description="batch order, augmentation, random scores and blocks")
    device: str = Field("cpu", description="torch device of the search and finetune")
    snl: SNLSettings = SNLSettings()
    autorep: AutoRePSettings = AutoRePSettings()
    cd: CDSettings = CDSettings()

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Fill the fields ``data`` does not give from the named preset (``short``: the field defaults)."""
        if isinstance(data, Mapping) and data.get("preset") == "paper":
            return _merge(PAPER, data)
        return data

    def search_mask_lr(self, search_steps: int, cosine: bool) -> float:
        """The Adam learning rate of mask parameters for a search of ``search_steps`` steps (``cosine``: the lr
        decays to 0 by a cosine, which halves its sum)."""
        if self.mask_lr is not None:
            return self.mask_lr
        schedule_sum = max(1, search_steps) / (2 if cosine else 1)
        return min(0.1, max(1e-3, self.mask_reach / schedule_sum))
