"""Knowledge distillation from the un-linearized network, and the step loop every linearization phase uses.

Loss = CE + KL(softmax(t/T) ‖ softmax(s/T))·T², weight 1:1, T = 4 (SNL, AutoReP and coordinate descent all
distil this way). Batches come from :class:`pisearch.train.batches.DeviceImages` (batched gather + augment);
without augmentation each training image's teacher logits are computed the first time a batch draws it and
kept, so a run shorter than an epoch pays only for the images it sees. The trainer meters compute for the
equal-compute rule: training steps, plus validation images that decide a search (``judge``) at
``EVAL_COST`` of a training image each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from pisearch.data import Splits
from pisearch.linearize.settings import EVAL_COST, LinearizeSettings
from pisearch.train import Fidelity, evaluate, lr_at, recalibrate_bn
from pisearch.train import DeviceImages

COSINE = Fidelity(schedule="cosine")  # lr_at reads only the schedule from it


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """KL(softmax(teacher/T) ‖ softmax(student/T))·T², averaged over the batch."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), reduction="batchmean",
                    log_target=True) * t * t


class Trainer:
    """Training data on the device, the (frozen) teacher and an endless seeded batch stream shared by the search
    and finetune phases of one linearization run."""

    def __init__(self, data: Splits, teacher: nn.Module | None, settings: LinearizeSettings) -> None:
        self.settings = settings
        self.device = torch.device(settings.device)
        self.data = data
        self.images = DeviceImages(data.train, self.device, augment=settings.augment)
        self.batch_size = min(settings.batch_size, len(self.images))
        self.steps_per_epoch = len(self.images) // self.batch_size
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.teacher = None if teacher is None else teacher.to(self.device, memory_format=torch.channels_last).eval()
        if self.teacher is not None:
            self.teacher.requires_grad_(False)
        self._memo = self.teacher is not None and not settings.augment
        if self._memo:
            self._logits = torch.zeros(len(self.images), data.train.num_classes, device=self.device)
            self._known = torch.zeros(len(self.images), dtype=torch.bool, device=self.device)
        self._stream = self._batches()
        self.steps_run = 0
        self.eval_images = 0
        self.on_step: Callable[[], object] | None = None  # called after every optimizer step (a progress bar)

    @property
    def spent(self) -> float:
        """Compute so far, in training steps: steps run plus judged validation images at ``EVAL_COST``."""
        return self.steps_run + self.eval_images * EVAL_COST / self.batch_size

    def steps(self, epochs: float) -> int:
        """Optimizer steps in ``epochs`` passes over the training set."""
        return round(epochs * self.steps_per_epoch)

    @torch.no_grad()
    def _teacher_logits(self, index: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The teacher's logits of batch ``x`` (training images ``index``), memoised when unaugmented."""
        if not self._memo:
            return self.teacher(x)
        new = ~self._known[index]
        if new.any():
            self._logits[index[new]] = self.teacher(x[new])
            self._known[index[new]] = True
        return self._logits[index]

    def _batches(self) -> Iterator[torch.Tensor]:
        while True:
            order = torch.randperm(len(self.images), generator=self.generator).to(self.device)
            for k in range(self.steps_per_epoch):
                yield order[k * self.batch_size:(k + 1) * self.batch_size]

    def loss(self, model: nn.Module, index: torch.Tensor) -> torch.Tensor:
        """CE (+ KD when a teacher is set) of ``model`` on the training images at ``index``."""
        x = self.images.batch(index, self.generator if self.settings.augment else None)
        logits = model(x)
        loss = F.cross_entropy(logits, self.images.y[index])
        if self.teacher is None:
            return loss
        return loss + kd_loss(logits, self._teacher_logits(index, x), self.settings.temperature)

    def train(self, model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, *, cosine: bool = False,
              penalty: Callable[[], torch.Tensor] | None = None,
              after_step: Callable[[int], bool | None] | None = None) -> int:
        """Run up to ``steps`` optimizer steps of (CE + KD + ``penalty()``); each param group's ``initial_lr``
        decays to 0 by a cosine over ``steps`` when ``cosine``. ``after_step(step)`` returning True stops early.
        Returns the steps run. A non-finite loss raises FloatingPointError."""
        model.train()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        for step in range(steps):
            if cosine:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, steps, 0, COSINE, group["initial_lr"])
            loss = self.loss(model, next(self._stream))
            if penalty is not None:
                loss = loss + penalty()
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"linearize: loss {loss.item()} at step {step + 1} of {steps}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.settings.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, self.settings.grad_clip)
            optimizer.step()
            self.steps_run += 1
            if self.on_step is not None:
                self.on_step()
            if after_step is not None and after_step(step):
                return step + 1
        return steps

    def finetune(self, model: nn.Module, steps: int) -> None:
        """``steps`` steps of SGD (momentum, weight decay, cosine from ``finetune_lr``) on CE + KD."""
        s = self.settings
        params = [p for p in model.parameters() if p.requires_grad]
        if steps and params:
            opt = torch.optim.SGD(params, lr=s.finetune_lr, momentum=s.momentum, weight_decay=s.weight_decay)
            self.train(model, opt, steps, cosine=True)

    def accuracy(self, model: nn.Module, split: str = "val", *, recalibrate: bool = False) -> float:
        """Top-1 in [0, 1] on ``split`` (``val`` or ``test``); ``recalibrate`` re-estimates BN statistics on
        training images first (when the settings allow it)."""
        model.to(self.device, memory_format=torch.channels_last)
        if recalibrate and self.settings.bn_recalibrate:
            recalibrate_bn(model, self.images, self.settings.eval_batch_size)  # unaugmented batches
        return evaluate(model, getattr(self.data, split), self.settings.eval_batch_size, str(self.device))

    def judge(self, model: nn.Module) -> float:
        """Validation top-1 that decides a search step; its forward passes are charged to ``spent``."""
        self.eval_images += len(self.data.val)
        return self.accuracy(model)
