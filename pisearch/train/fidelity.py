"""Proxy-training settings (the study file's ``fidelity:`` block), validated by pydantic.

Defaults are for short proxies on CPU and were chosen by measurement on ``digits`` (see
``benchmarks/train_throughput.py`` and the notes on each field)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Fidelity(BaseModel):
    """How a candidate is trained; the same model init + data + fidelity give the same accuracy on CPU."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(5, ge=1, description="passes over the training subset")
    train_subset: int | None = Field(None, ge=2, description="first N of a permutation of train drawn by seed; "
                                     "None: all of train")
    batch_size: int = Field(128, ge=2, description="images per SGD step (the last partial batch is dropped)")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="sgd: SGD with momentum; adam: AdamW "
                                              "(decoupled weight decay, beta1 = momentum)")
    lr: float = Field(0.1, gt=0, description="peak learning rate (after warm-up)")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = Field(True, description="Nesterov momentum (sgd only)")
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "constant"] = Field("cosine", description="learning rate after warm-up, per step")
    warmup_epochs: float = Field(1.0, ge=0, description="linear warm-up from lr/steps to lr, in epochs")
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    augment: bool = Field(True, description="random crop with zero padding of side/8 (4 px at 32²) + horizontal "
                         "flip, batched")
    zero_init_residual: bool = Field(True, description="zero the last BN scale of each residual "
                                       "branch (applied by seeded_build)")
    grad_clip: float | None = Field(1.0, gt=0, description="clip the global gradient norm to this; None: off")
    bn_recalibrate: bool = Field(True, description="re-estimate BN statistics on train images before each "
                                 "validation")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast forward passes to bfloat16 "
                                               "(≈2× faster on CPUs with AMX/AVX512-BF16 and on GPUs)")
    seed: int = Field(0, description="model init (seeded_build), subset, shuffling and augmentation")
    threads: int | None = Field(None, ge=1, description="torch CPU threads during training; None: unchanged")
    eval_batch_size: int = Field(512, ge=1)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> Fidelity:
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        return self
