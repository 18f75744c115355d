"""Proxy-training settings (the study file's ``fidelity:`` block), validated by pydantic.

Defaults are for short proxies on CPU, chosen by measurement on ``digits`` (ResNet18-shaped, widths m-2m-4m-8m,
m = 8 and 64, 16² and 32², 5 epochs, batch 64; final validation top-1 unless said otherwise):

* ``augment`` off: m=8 16², lr 0.1: 0.657 with crop+flip vs 0.965 without (flip changes what a digit is, and a
  few epochs cannot absorb it). Turn it on for long runs on natural images.
* ``lr`` 0.2 at batch 64: m=8 0.993 (0.1: 0.965), m=64 1.000 (0.1: 0.972); batch 128 at 0.2: 0.965 (m=8).
* ``warmup_epochs`` 1: m=8 with crop+flip 0.657 vs 0.615 without warm-up.
* ``zero_init_residual`` on: the one setting that keeps all-poly networks trainable (m=8 poly 16²: 0.503 vs
  0.105 or divergence without it); on ReLU networks it costs a little in the first epochs only (m=8 32²:
  0.979 vs 0.993 after 5 epochs).
* ``grad_clip`` 1.0: without it the m=8 and m=64 all-poly networks diverge (NaN loss in epoch 1, twice);
  with it neither does; ReLU networks end equal (m=64: 0.972 both).
* ``bn_recalibrate`` on: the same final accuracy, better early epochs (m=8 epoch 1: 0.497 vs 0.315), so a
  short proxy does not read lagging BN statistics.

Rank fidelity, measured by ``benchmarks/proxy_fidelity.py`` on Fashion-MNIST (all 15 architectures of the
benchmark, which span the shipped spaces; Kendall τ between the proxy's accuracy ranking, mean of 2 seeds, and a
reference that sees 10× the images; the first two scales on CPU at 16² with widths ÷4):

* the issue's scale (proxy 5 epochs × 1,024 images = 80 SGD steps; reference 10 × 5,120): the defaults give
  τ 0.70 (Spearman ρ 0.87); without clipping 0.68, lr 0.1: 0.52, the same images as 1 epoch × 5,120: 0.58.
* a 16-step proxy (``--quick``: 2 epochs × 512; reference 10 × 1,024, mean of 2 reference seeds, whose own
  seed-to-seed τ is only 0.70): defaults 0.54 (ρ 0.69); without zero-init 0.37 (with higher accuracies: a faster
  start is not a better ranking), without BN recalibration lower still (0.47 on 10 architectures), without
  warm-up 0.52, lr 0.1: 0.58, lr scaled by width 0.52, the same images as 4 epochs × 256: 0.45, without clipping
  0.60. A promoted level of twice the epochs ranks at 0.66 re-trained and 0.71 warm-started from the proxy's
  weights (``promotion.warm_start``).
* full size on one H100 (32², real widths, ``benchmarks/gpu_fidelity.sh``; proxy 5 epochs × 6,000 images =
  470 steps, reference 6 epochs × 54,000, two runs): the defaults give τ 0.51 (ρ 0.66) against the mean of the two
  reference runs, which agree with each other at τ 0.76. The proxy agrees with itself (τ 0.87 run to run), so
  this is bias, not noise: it ranks the widest networks low (the two HybReNets: 1st–6th of 15 under the reference,
  8th–13th under the proxy). A promoted level of twice the epochs, warm-started, gives τ 0.79 (ρ 0.90):
  let promotion (``fidelities:``) decide the final front of wide-network spaces.

Every default is kept: each removal lowers τ at one scale or both, except clipping, which is within three
discordant pairs of neutral and is kept for the all-poly networks above. Digits (15 architectures, ``--quick``;
not run at full size): τ 0.49 for the defaults against a reference whose own two seeds agree at τ 0.11: 359
validation images and reference accuracies of 95–99% leave noise to rank, so digits is a smoke-test dataset, not
a ranking one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Fidelity(BaseModel):
    """How a candidate is trained; the same model init + data + fidelity give the same accuracy on CPU."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(5, ge=1, description="passes over the training subset")
    train_subset: int | None = Field(None, ge=2, description="first N of a permutation of train drawn by seed; "
                                     "None: all of train")
    batch_size: int = Field(64, ge=2, description="images per SGD step (the last partial batch is dropped)")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="sgd: SGD with momentum; adam: AdamW "
                                              "(decoupled weight decay, beta1 = momentum)")
    lr: float = Field(0.2, gt=0, description="peak learning rate (after warm-up)")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = Field(True, description="Nesterov momentum (sgd only)")
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "constant"] = Field("cosine", description="learning rate after warm-up, per step")
    warmup_epochs: float = Field(1.0, ge=0, description="linear warm-up from lr/steps to lr, in epochs (rank "
                                 "fidelity with and without: module docstring)")
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    augment: bool = Field(False, description="random crop with zero padding of side/8 (4 px at 32²) + horizontal "
                         "flip, batched")
    zero_init_residual: bool | Literal["auto"] = Field(True, description="zero the last BN scale of each "
                                                       "residual branch (applied by seeded_build); auto: only in "
                                                       "networks with a poly, identity or masked site")
    grad_clip: float | None = Field(1.0, gt=0, description="clip the global gradient norm to this; None: off "
                                    "(keeps all-poly networks from diverging)")
    bn_recalibrate: bool = Field(True, description="re-estimate BN statistics on train images before each "
                                 "validation")
    precision: Literal["fp32", "bf16", "auto"] = Field("fp32", description="bf16: autocast forward passes to "
                                                       "bfloat16 (≈2× faster on CPUs with AMX/AVX512-BF16 and on "
                                                       "GPUs, emulated and slow elsewhere); auto: bf16 where the "
                                                       "device has bf16 units, else fp32")
    seed: int = Field(0, description="model init (seeded_build), subset, shuffling and augmentation")
    threads: int | None = Field(None, ge=1, description="torch CPU threads during training; None: unchanged")
    eval_batch_size: int = Field(512, ge=1)

    @field_validator("zero_init_residual", mode="before")
    @classmethod
    def _bool_or_auto(cls, value: object) -> object:
        if isinstance(value, bool) or value == "auto":
            return value
        raise ValueError(f"expected true, false or 'auto', got {value!r}")

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> Fidelity:
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        return self
