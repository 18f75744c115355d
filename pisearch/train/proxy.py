"""The proxy trainer: short, deterministic training of a candidate, reporting validation top-1 per epoch.

A run whose loss becomes NaN/inf (or whose validation outputs do) is retried once from the same initial
weights at lr/10; if that diverges too the result says ``status="diverged"`` with the reason — no exception.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from pisearch.data import ImageData
from pisearch.models import build
from pisearch.spec import ArchSpec
from pisearch.train.batches import DeviceImages
from pisearch.train.fidelity import Fidelity
from pisearch.train.hardware import bf16_supported

RECALIBRATE_IMAGES = 512  # training images (unaugmented) that re-estimate BN statistics before validation
RETRY_LR_FACTOR = 0.1


@dataclass
class TrainResult:
    """Outcome of :func:`train_proxy`. ``accuracy`` is validation top-1 in [0, 1] after the last epoch (NaN
    when diverged); ``train_seconds`` is the wall time of the whole call (retry included);
    ``images_per_second`` counts training images through forward+backward+step of the final attempt."""

    accuracy: float
    accuracy_per_epoch: list[float]
    train_seconds: float
    images_per_second: float
    status: Literal["ok", "diverged"] = "ok"
    reason: str | None = None
    retried: bool = False


@dataclass
class _Attempt:
    accuracies: list[float] = field(default_factory=list)
    step_seconds: float = 0.0
    images: int = 0
    diverged: str | None = None


def has_non_relu_site(spec: ArchSpec) -> bool:
    """Whether some site of ``spec`` computes a poly or identity anywhere (its kind, or a mask's off positions)."""
    return any(act.kind != "relu" or (act.mask is not None and act.mask.kept < math.prod(act.mask.shape))
               for _, act in spec.acts)


def zero_init_for(spec: ArchSpec, fidelity: Fidelity) -> bool:
    """``fidelity.zero_init_residual`` for ``spec``, with ``auto`` resolved: zero-init only networks with a
    non-ReLU site (they need it to train stably; all-ReLU networks then train every block from the first step)."""
    setting = fidelity.zero_init_residual
    return has_non_relu_site(spec) if setting == "auto" else setting


def seeded_build(spec: ArchSpec, fidelity: Fidelity) -> nn.Module:
    """``build(spec)`` with weights drawn from ``fidelity.seed`` and, if :func:`zero_init_for` says so,
    zero-initialised residual BNs (the caller's global RNG is left untouched). Use it to get reproducible proxy
    accuracies."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(fidelity.seed)
        return build(spec, zero_init_residual=zero_init_for(spec, fidelity))


def resolved_precision(fidelity: Fidelity, device: torch.device | str) -> Literal["fp32", "bf16"]:
    """``fidelity.precision`` on ``device``, with ``auto`` resolved by :func:`bf16_supported`."""
    if fidelity.precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    return fidelity.precision


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def lr_at(step: int, total: int, warmup: int, fidelity: Fidelity, lr: float) -> float:
    """Learning rate for 0-based ``step`` of ``total``: linear warm-up over ``warmup`` steps to ``lr``, then
    constant or cosine decay towards 0."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if fidelity.schedule == "constant":
        return lr
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _autocast(device: torch.device, precision: Literal["fp32", "bf16"]):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _optimizer(model: nn.Module, fidelity: Fidelity, lr: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if fidelity.optimizer == "adam":
        return torch.optim.AdamW(params, lr=lr, betas=(fidelity.momentum, 0.999), weight_decay=fidelity.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=fidelity.momentum, nesterov=fidelity.nesterov,
                           weight_decay=fidelity.weight_decay)


@torch.no_grad()
def _accuracy(model: nn.Module, images: DeviceImages, batch_size: int) -> tuple[float, bool]:
    """(top-1 accuracy, whether every logit was finite) of ``model`` in eval mode."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    finite = torch.ones((), dtype=torch.bool, device=images.device)
    for i in range(0, len(images), batch_size):
        index = torch.arange(i, min(i + batch_size, len(images)), device=images.device)
        logits = model(images.batch(index))
        correct += (logits.argmax(1) == images.y[index]).sum()
        finite &= torch.isfinite(logits).all()
    return correct.item() / max(1, len(images)), bool(finite)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: DeviceImages, batch_size: int, n_images: int = RECALIBRATE_IMAGES):
    """Reset every BatchNorm's running statistics and re-estimate them as the plain average over the first
    ``n_images`` (unaugmented) images, so validation does not use statistics lagging behind fast training."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    n = min(n_images, len(images))
    for i in range(0, n, batch_size):
        model(images.batch(torch.arange(i, min(i + batch_size, n), device=images.device)))
    for m, mom in zip(bns, momenta):
        m.momentum = mom


def evaluate(model: nn.Module, data: ImageData, batch_size: int = 512, device: str = "cpu") -> float:
    """Top-1 accuracy in [0, 1] of ``model`` (eval mode, BN running statistics) on ``data``."""
    model.to(device, memory_format=torch.channels_last)
    return _accuracy(model, DeviceImages(data, device), batch_size)[0]


def _fit(model: nn.Module, train: DeviceImages, val: DeviceImages, fidelity: Fidelity, lr: float,
         progress: Callable[[int, float], None] | None) -> _Attempt:
    """One training attempt from the model's current weights; stops at the first non-finite loss."""
    g = torch.Generator().manual_seed(fidelity.seed)
    batch = min(fidelity.batch_size, len(train))
    per_epoch = len(train) // batch
    total, warmup = fidelity.epochs * per_epoch, round(fidelity.warmup_epochs * per_epoch)
    opt = _optimizer(model, fidelity, lr)
    precision = resolved_precision(fidelity, train.device)
    params = [p for group in opt.param_groups for p in group["params"]]
    out = _Attempt()
    for epoch in range(1, fidelity.epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=g).to(train.device)
        t0 = time.perf_counter()
        for k in range(per_epoch):
            step = (epoch - 1) * per_epoch + k
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, warmup, fidelity, lr)
            index = order[k * batch:(k + 1) * batch]
            x = train.batch(index, g if fidelity.augment else None)
            with _autocast(train.device, precision):
                loss = F.cross_entropy(model(x), train.y[index], label_smoothing=fidelity.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if fidelity.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, fidelity.grad_clip)
            value = loss.item()
            if not math.isfinite(value):
                out.diverged = f"loss {value} at epoch {epoch}, step {k + 1} (lr {lr:g})"
                return out
            opt.step()
            out.images += batch
        out.step_seconds += time.perf_counter() - t0
        with _autocast(train.device, precision):
            if fidelity.bn_recalibrate:
                recalibrate_bn(model, train, fidelity.eval_batch_size)
            acc, finite = _accuracy(model, val, fidelity.eval_batch_size)
        if not finite:
            out.diverged = f"non-finite validation outputs after epoch {epoch} (lr {lr:g})"
            return out
        out.accuracies.append(acc)
        if progress is not None:
            progress(epoch, acc)
    return out


def train_proxy(model: nn.Module, train: ImageData, val: ImageData, fidelity: Fidelity, *, device: str = "cpu",
                progress: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train ``model`` in place on ``train`` (or its seeded ``train_subset``) as ``fidelity`` says and report
    validation top-1 after every epoch; ``progress(epoch, accuracy)`` is called after each epoch (a retry
    counts its epochs from 1 again). The model's
    initial weights are the caller's: build it with :func:`seeded_build` for reproducible results."""
    start = time.perf_counter()
    with _threads(fidelity.threads):
        if fidelity.train_subset is not None and fidelity.train_subset < len(train):
            perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(fidelity.seed))
            train = train.subset(perm[: fidelity.train_subset])
        model.to(device, memory_format=torch.channels_last)
        init = copy.deepcopy(model.state_dict())
        train_images = DeviceImages(train, device, augment=fidelity.augment)
        val_images = DeviceImages(val, device)
        attempt = _fit(model, train_images, val_images, fidelity, fidelity.lr, progress)
        first = attempt.diverged
        if first is not None:
            model.load_state_dict(init)
            attempt = _fit(model, train_images, val_images, fidelity, fidelity.lr * RETRY_LR_FACTOR, progress)
    diverged = attempt.diverged is not None
    reason = None if first is None else first if not diverged else f"{first}; retry: {attempt.diverged}"
    return TrainResult(
        accuracy=math.nan if diverged else attempt.accuracies[-1],
        accuracy_per_epoch=attempt.accuracies,
        train_seconds=time.perf_counter() - start,
        images_per_second=attempt.images / attempt.step_seconds if attempt.step_seconds else 0.0,
        status="diverged" if diverged else "ok",
        reason=reason,
        retried=first is not None,
    )
