"""Tiny ImageNet (200 classes, 64×64) from its standard folder layout; the official val set is our test set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pisearch.data.images import ImageData
from pisearch.data.registry import data_root, missing, register_dataset
from pisearch.config import read_text
from pisearch.errors import UserError

TINY_FOLDER = "tiny-imagenet-200"
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def decode_jpegs(paths: list[Path]) -> torch.Tensor:
    """Decode image files to one uint8 ``(N, 3, H, W)`` tensor (grey files become RGB); all must share a size."""
    from PIL import Image, UnidentifiedImageError

    out = None
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as err:
            raise UserError(f"{p}: could not be decoded ({err})") from None
        if out is None:
            out = np.empty((len(paths), *arr.shape), dtype=np.uint8)
        if arr.shape != out.shape[1:]:
            raise UserError(f"{p}: size {arr.shape[1]}×{arr.shape[0]} differs from the other images' "
                            f"{out.shape[2]}×{out.shape[1]}")
        out[i] = arr
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def read_lines(path: Path, fields: int = 1) -> list[list[str]]:
    """Whitespace-separated fields of each non-empty line, each with at least ``fields`` of them."""
    rows = [line.split() for line in read_text(path).splitlines() if line.strip()]
    short = next((i for i, row in enumerate(rows) if len(row) < fields), None)
    if short is not None:
        raise UserError(f"{path}: non-empty line {short + 1} has {len(rows[short])} field(s), expected {fields} or more")
    return rows


@register_dataset("tinyimagenet")
def tinyimagenet(root: Path | None, download: bool) -> tuple[ImageData, ImageData]:
    """Tiny ImageNet: 100,000 train (500 per class) / 10,000 test (the official val) RGB 64×64 images,
    200 classes numbered in sorted-wnid order, from ``root/tiny-imagenet-200/``."""
    root = data_root() if root is None else root
    base = root / TINY_FOLDER
    if not (base / "wnids.txt").is_file() and download:
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(TINY_URL, str(root))
    if not (base / "wnids.txt").is_file():
        raise missing("tinyimagenet", [base], f"pass download=True, or unzip {TINY_URL} into {root}")
    wnids = sorted(row[0] for row in read_lines(base / "wnids.txt"))
    label = {w: i for i, w in enumerate(wnids)}
    train_files = [(p, label[w]) for w in wnids for p in sorted((base / "train" / w / "images").glob("*.JPEG"))]
    annotations = base / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise missing("tinyimagenet", [annotations], f"the val annotations are part of {TINY_URL}")
    unknown = sorted({row[1] for row in read_lines(annotations, 2)} - set(label))
    if unknown:
        raise UserError(f"{annotations}: wnids not in wnids.txt: {', '.join(unknown[:5])}")
    test_files = [(base / "val" / "images" / row[0], label[row[1]]) for row in read_lines(annotations, 2)]
    if not train_files:
        raise UserError(f"{base}: no train images under train/<wnid>/images/*.JPEG")
    if not test_files:
        raise UserError(f"{annotations}: no val annotations in it")

    def load(files: list[tuple[Path, int]]) -> ImageData:
        y = torch.tensor([c for _, c in files], dtype=torch.int64)
        return ImageData(decode_jpegs([p for p, _ in files]), y, len(wnids), "tinyimagenet")

    return load(train_files), load(test_files)
