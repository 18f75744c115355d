"""Batches straight from uint8 tensors on the device: gather, augment and normalise whole batches at once.

Images are stored once as zero-padded NHWC uint8; a batch is one gather whose row/column indices already
encode each image's random crop offset and horizontal flip, so there is no per-image Python. The result is a
float NCHW tensor in channels_last memory format, normalised with fixed constants (mean 0.5, std 0.25 on the
0–1 scale: every model sees the same inputs whichever split or dataset it is evaluated on)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pisearch.data import ImageData

PAD_FRACTION = 1 / 8  # random-crop padding as a fraction of the image side: 4 px at 32² (CIFAR convention)
NORM_MEAN, NORM_STD = 0.5, 0.25


class DeviceImages:
    """An :class:`ImageData` held on ``device`` as padded NHWC uint8, served as normalised float batches."""

    def __init__(self, data: ImageData, device: str | torch.device, augment: bool = False) -> None:
        self.h, self.w = data.x.shape[-2:]
        self.pad = pad = max(1, round(PAD_FRACTION * min(self.h, self.w))) if augment else 0
        self.x = F.pad(data.x.permute(0, 2, 3, 1), (0, 0, pad, pad, pad, pad)).contiguous().to(device)
        self.y = data.y.to(device)
        self.device = self.x.device

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images at ``index`` (on the device) as normalised float ``(B, C, H, W)``, channels_last; with a
        CPU ``generator`` (and ``augment`` at construction), each image gets a random crop of its zero-padded
        self (offset 0..2·pad, pad = side/8) and a horizontal flip with probability ½."""
        b = len(index)
        rows = torch.arange(self.h, device=self.device).expand(b, -1)
        cols = torch.arange(self.w, device=self.device).expand(b, -1)
        if generator is None:
            rows, cols = rows + self.pad, cols + self.pad
        else:
            oy, ox = torch.randint(0, 2 * self.pad + 1, (2, b, 1), generator=generator).to(self.device)
            flip = (torch.rand(b, 1, generator=generator) < 0.5).to(self.device)
            rows = rows + oy
            cols = torch.where(flip, self.w - 1 - cols, cols) + ox
        x = self.x[index[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
        x = x.permute(0, 3, 1, 2).float()
        return x.mul_(1 / (255 * NORM_STD)).sub_(NORM_MEAN / NORM_STD)
