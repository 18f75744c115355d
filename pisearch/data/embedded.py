"""Datasets that need no files: scikit-learn's bundled digits (the default) and a synthetic set for tests."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from pisearch.data.images import ImageData, hold_out_test
from pisearch.data.registry import register_dataset

SYNTHETIC = {"classes": 10, "train_per_class": 60, "test_per_class": 20, "resolution": 16, "seed": 1234}


@register_dataset("digits", default_resolution=32)
def digits(root: Path | None, download: bool) -> tuple[ImageData, ImageData]:
    """scikit-learn's ``load_digits``: 1,797 real 8×8 handwritten digits (values 0–16 → 0–255), 10 classes;
    a fixed stratified 20% is the test set (:func:`~pisearch.data.images.hold_out_test`)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    y = torch.from_numpy(bunch.target).long()
    return hold_out_test(ImageData(x, y, 10, "digits"))


def synthetic_images(per_class: int, *, classes: int, resolution: int, seed: int) -> ImageData:
    """``per_class`` noisy copies of one smooth random RGB template per class (learnable by a tiny network)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(classes, 3, 4, 4, generator=g)
    templates = F.interpolate(coarse, size=(resolution, resolution), mode="bilinear", align_corners=False)
    y = torch.arange(classes).repeat_interleave(per_class)
    noise = 0.15 * torch.randn(len(y), 3, resolution, resolution, generator=g)
    x = (templates[y] + noise).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return ImageData(x, y, classes, "synthetic")


@register_dataset("synthetic")
def synthetic(root: Path | None, download: bool) -> tuple[ImageData, ImageData]:
    """For unit tests only: 10 classes, 600 train / 200 test images of 16×16, deterministic."""
    s = SYNTHETIC
    per_class = s["train_per_class"] + s["test_per_class"]
    data = synthetic_images(per_class, classes=s["classes"], resolution=s["resolution"], seed=s["seed"])
    is_test = torch.arange(len(data)) % per_class >= s["train_per_class"]
    return data.subset(torch.nonzero(~is_test).flatten()), data.subset(torch.nonzero(is_test).flatten())
