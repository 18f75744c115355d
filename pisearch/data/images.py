"""In-memory image sets (uint8 tensors) and the transforms applied once at load: resize, channels, splits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pisearch.errors import UserError

# ITU-R BT.601 luma weights, for turning RGB into one grey channel.
LUMA = (0.299, 0.587, 0.114)
RESIZE_CHUNK = 4096  # images resized per float32 batch (bounds the memory of a one-off resize)


@dataclass
class ImageData:
    """Images ``x`` (uint8, ``(N, C, H, W)``, contiguous, pixel values 0–255) and labels ``y`` (int64, ``(N,)``)."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise ValueError(f"{self.name}: x must be uint8 (N, C, H, W), got {self.x.dtype} {tuple(self.x.shape)}")
        if self.y.dim() != 1 or len(self.y) != len(self.x):
            raise ValueError(f"{self.name}: y must have shape ({len(self.x)},), got {tuple(self.y.shape)}")
        self.x = self.x.contiguous()
        self.y = self.y.to(torch.int64)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: torch.Tensor) -> ImageData:
        """The images at ``index`` (a LongTensor of positions), in that order."""
        return ImageData(self.x[index], self.y[index], self.num_classes, self.name)


@dataclass
class Splits:
    """Train (for fitting), validation (for search decisions) and test (never used by a search)."""

    train: ImageData
    val: ImageData
    test: ImageData


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear resize of uint8 ``(N, C, H, W)`` images to ``resolution``² (antialiased when shrinking)."""
    if x.shape[-2:] == (resolution, resolution):
        return x
    out = torch.empty((len(x), x.shape[1], resolution, resolution), dtype=torch.uint8)
    for i in range(0, len(x), RESIZE_CHUNK):
        chunk = F.interpolate(x[i:i + RESIZE_CHUNK].float(), size=(resolution, resolution), mode="bilinear",
                              align_corners=False, antialias=resolution < max(x.shape[-2:]))
        out[i:i + RESIZE_CHUNK] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out


def to_channels(x: torch.Tensor, channels: int, name: str) -> torch.Tensor:
    """Grey → ``channels`` by replication, RGB → grey by BT.601 luma; other conversions are a UserError."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    if c == 3 and channels == 1:
        w = torch.tensor(LUMA).view(1, 3, 1, 1)
        return (x.float() * w).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise UserError(f"dataset {name}: channels: cannot turn {c}-channel images into {channels} channels")


def stratified_split(y: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(kept, held)``: ``round(fraction · n_c)`` images of each class ``c``, drawn by ``seed``, are
    held out. Both index sets are sorted, so the split depends only on the labels, the fraction and the seed."""
    g = torch.Generator().manual_seed(seed)
    held = []
    for c in torch.unique(y, sorted=True):
        idx = torch.nonzero(y == c).flatten()
        held.append(idx[torch.randperm(len(idx), generator=g)[: round(fraction * len(idx))]])
    held_idx = torch.cat(held).sort().values
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[held_idx] = False
    return torch.nonzero(mask).flatten(), held_idx
