"""The dataset registry: ``@register_dataset`` loaders and ``load_dataset(name, ...) -> Splits``.

A loader takes ``(root or None, download)`` and returns the official ``(train, test)`` sets at their native size; the
registry resizes them, converts channels and carves the validation split from train, the same way for all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pisearch.data.images import ImageData, Splits, resize, stratified_split, to_channels
from pisearch.errors import UserError

Loader = Callable[[Path | None, bool], tuple[ImageData, ImageData]]
DATA_ENV = "PISEARCH_DATA"


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: its loader and the resolution used when the caller gives none (None: native)."""

    name: str
    load: Loader
    default_resolution: int | None = None


DATASETS: dict[str, Dataset] = {}


def register_dataset(name: str, default_resolution: int | None = None) -> Callable[[Loader], Loader]:
    """Register ``fn(root, download) -> (train, test)`` under ``name``; ``root`` None means the default place."""

    def deco(fn: Loader) -> Loader:
        DATASETS[name] = Dataset(name, fn, default_resolution)
        return fn

    return deco


def data_root() -> Path:
    """Where datasets live when no root is given: ``$PISEARCH_DATA``, else ``./data``."""
    return Path(os.environ.get(DATA_ENV, "data"))


def missing(name: str, looked: Sequence[Path], how: str) -> UserError:
    """The error for a dataset that is not on disk: where we looked and how to get it."""
    where = ", ".join(str(p.absolute()) for p in looked)
    return UserError(f"dataset {name}: not found (looked in {where}); {how}")


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    resolution: int | None = None,
    channels: int = 3,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    download: bool = False,
) -> Splits:
    """Load ``name`` into memory as uint8 tensors, ``resolution``² pixels (default: the dataset's own) and
    ``channels`` channels; validation = a stratified ``val_fraction`` of train drawn by ``split_seed``."""
    if name not in DATASETS:
        raise UserError(f"dataset: unknown name {name!r} (known: {', '.join(sorted(DATASETS))})")
    if not 0 < val_fraction < 1:
        raise UserError(f"dataset {name}: val_fraction: must be between 0 and 1 (exclusive), got {val_fraction}")
    if channels < 1:
        raise UserError(f"dataset {name}: channels: must be at least 1, got {channels}")
    if resolution is not None and resolution < 1:
        raise UserError(f"dataset {name}: resolution: must be a positive number of pixels, got {resolution}")
    entry = DATASETS[name]
    train, test = entry.load(None if root is None else Path(root), download)
    res = resolution or entry.default_resolution

    def prepare(d: ImageData) -> ImageData:
        x = d.x if res is None else resize(d.x, res)
        return ImageData(to_channels(x, channels, name), d.y, d.num_classes, name)

    train, test = prepare(train), prepare(test)
    kept, held = stratified_split(train.y, val_fraction, split_seed)
    return Splits(train=train.subset(kept), val=train.subset(held), test=test)
