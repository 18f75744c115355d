"""In-memory image sets (uint8 tensors) and the transforms applied once at load: resize, channels, splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pisearch.errors import UserError

# ITU-R BT.601 luma weights, for turning RGB into one grey channel.
LUMA = (0.299, 0.587, 0.114)
RESIZE_CHUNK = 4096  # images resized per float32 batch (bounds the memory of a one-off resize)
# A dataset without its own test set (digits, a folder without test_root, an npz without x_test) holds out a
# stratified TEST_FRACTION of its images as the test set, drawn by the fixed TEST_SEED: never the caller's split seed.
TEST_FRACTION = 0.2
TEST_SEED = 0
HELD_OUT = f"held out: a stratified {TEST_FRACTION:.0%} of the images (fixed seed {TEST_SEED})"


@dataclass
class ImageData:
    """Images ``x`` (uint8, ``(N, C, H, W)``, contiguous, pixel values 0–255), labels ``y`` (int64, ``(N,)``) and,
    when known, the name of each class (``classes[i]`` names label ``i``)."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    name: str
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise ValueError(f"{self.name}: x must be uint8 (N, C, H, W), got {self.x.dtype} {tuple(self.x.shape)}")
        if self.y.dim() != 1 or len(self.y) != len(self.x):
            raise ValueError(f"{self.name}: y must have shape ({len(self.x)},), got {tuple(self.y.shape)}")
        if self.classes and len(self.classes) != self.num_classes:
            raise ValueError(f"{self.name}: {len(self.classes)} class names for {self.num_classes} classes")
        self.x = self.x.contiguous()
        self.y = self.y.to(torch.int64)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: torch.Tensor) -> ImageData:
        """The images at ``index`` (a LongTensor of positions), in that order."""
        return ImageData(self.x[index], self.y[index], self.num_classes, self.name, self.classes)


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
    order = torch.from_numpy(np.argsort(y.numpy(), kind="stable"))  # each class's positions in turn, ascending
    counts = torch.unique_consecutive(y[order], return_counts=True)[1].tolist()
    held = [idx[torch.randperm(len(idx), generator=g)[: round(fraction * len(idx))]] for idx in order.split(counts)]
    held_idx = torch.cat(held).sort().values
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[held_idx] = False
    return torch.nonzero(mask).flatten(), held_idx


def stratified_subset(y: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Sorted indices of about ``size`` of the labels ``y``: the same share of every class, drawn by ``seed``."""
    return stratified_split(y, min(1.0, size / len(y)), seed)[1]


def split_off_test(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(kept, test)`` of a dataset without its own test set: a stratified :data:`TEST_FRACTION` of the
    labels ``y`` drawn by :data:`TEST_SEED` (:func:`stratified_split`) is the test set."""
    return stratified_split(y, TEST_FRACTION, TEST_SEED)


def hold_out_test(data: ImageData) -> tuple[ImageData, ImageData]:
    """``(train, test)`` of ``data`` split by :func:`split_off_test`."""
    kept, held = split_off_test(data.y)
    return data.subset(kept), data.subset(held)
