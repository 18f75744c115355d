"""Proxy-training settings (the study file's ``fidelity:`` block), validated by pydantic.

Every default was chosen by measurement; one line each on why (figures and the rank-fidelity runs behind them:
``benchmarks/README.md``, section "Proxy fidelity"):

* ``augment`` off: crop+flip costs a short proxy on digits more than it gives (0.657 vs 0.965, m=8 16²).
* ``lr`` 0.2 at batch 64: the most accurate short runs at m=8 and m=64; lr 0.1 ranks worse (τ 0.52 vs 0.70).
* ``warmup_epochs`` 1: better accuracy with augmentation and a better ranking (τ 0.54 vs 0.52 without).
* ``zero_init_residual`` on: keeps all-poly networks trainable (0.503 vs 0.105 or divergence without it).
* ``grad_clip`` 1.0: without it all-poly networks diverge; ReLU networks end equal.
* ``bn_recalibrate`` on: short proxies do not read lagging BN statistics (τ 0.47 without, 10 architectures).
* ``precision`` auto: bf16 only where the hardware runs it natively (1.1–2.5× faster proxies, the same ranking:
  ``benchmarks/precision.py``), fp32 elsewhere.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pisearch.config import ConfigModel


class Fidelity(ConfigModel):
    """How a candidate is trained; the same model init + data + fidelity give the same accuracy on CPU."""

    epochs: int = Field(5, ge=1, description="passes over the training subset")
    train_subset: int | None = Field(None, ge=2, description="first N of a permutation of train drawn by seed; "
                                     "null: all of train")
    batch_size: int = Field(64, ge=2, description="images per SGD step (the last partial batch is dropped)")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="sgd: SGD with momentum; adam: AdamW "
                                              "(decoupled weight decay, beta1 = momentum)")
    lr: float = Field(0.2, gt=0, description="peak learning rate (after warm-up)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (adam: beta1)")
    nesterov: bool = Field(True, description="Nesterov momentum (sgd only)")
    weight_decay: float = Field(5e-4, ge=0, description="L2 weight decay (adam: decoupled)")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="learning rate after warm-up, per step")
    warmup_epochs: float = Field(1.0, ge=0, description="linear warm-up from lr/steps to lr, in epochs (rank "
                                 "fidelity with and without: module docstring)")
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="label smoothing of the cross-entropy loss")
    augment: bool = Field(False, description="random crop with zero padding of side/8 (4 px at 32²) + horizontal "
                         "flip, batched")
    zero_init_residual: bool | Literal["auto"] = Field(True, description="zero the last BN scale of each "
                                                       "residual branch (applied by seeded_build); auto: only in "
                                                       "networks with a poly, identity or masked site")
    grad_clip: float | None = Field(1.0, gt=0, description="clip the global gradient norm to this; null: off "
                                    "(keeps all-poly networks from diverging)")
    bn_recalibrate: bool = Field(True, description="re-estimate BN statistics on train images before each "
                                 "validation")
    precision: Literal["fp32", "bf16", "auto"] = Field("auto", description="bf16: autocast forward passes to "
                                                       "bfloat16 (1.4–1.9× faster on an AVX512-BF16 CPU in benchmarks/precision.py, faster on GPUs, "
                                                       "on GPUs, emulated and ~5× slower elsewhere); auto: bf16 "
                                                       "where the device has bf16 units, else fp32 (a study keeps "
                                                       "the precision it was created with)")
    seed: int = Field(0, description="model init (seeded_build), subset, shuffling and augmentation")
    threads: int | None = Field(None, ge=1, description="torch CPU threads during training; null: unchanged")
    eval_batch_size: int = Field(512, ge=1, description="images per forward pass when validating")

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
