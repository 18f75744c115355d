"""The dataset registry: ``@register_dataset`` loaders and ``load_dataset(name, ...) -> Splits``.

A loader takes ``(root or None, download)`` and returns the official ``(train, test)`` sets at their native size; the
registry resizes them, converts channels and carves the validation split from train, the same way for all. A loader
of the user's own files (``own=True``: ``folder``, ``npz``) takes a :class:`Source` instead and may return no test set
(a stratified share is then held out, :func:`~pisearch.data.images.split_off_test`); what it loaded is recorded
in the run folder (:mod:`pisearch.data.record`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from pisearch.data.images import (HELD_OUT, ImageData, Splits, resize, split_off_test, stratified_split,
                                  to_channels)
from pisearch.data.record import write_record
from pisearch.errors import UserError

DATA_ENV = "PISEARCH_DATA"
OWN_KEYS = ("test_root", "path", "subset")  # load_dataset arguments only datasets of the user's own files read


@dataclass(frozen=True)
class Source:
    """What a loader of the user's own files reads: ``root`` (a folder), ``test_root``, ``path`` (a file), at most
    ``subset`` images (a stratified sample drawn by ``seed``) at ``resolution``² pixels and ``channels`` channels;
    ``run_dir``, when given, is where it may keep a cache."""

    name: str
    root: Path | None
    test_root: Path | None
    path: Path | None
    subset: int | None
    resolution: int
    channels: int
    seed: int
    run_dir: Path | None

    def required(self, key: str) -> Path:
        """The path ``key`` (``root`` or ``path``); a UserError when it was not given."""
        value = getattr(self, key)
        if value is None:
            raise UserError(f"dataset {self.name}: {key}: required (the {'folder' if key == 'root' else 'file'} "
                            "holding your images)")
        return value

    def described(self) -> dict[str, str | int]:
        """The paths and subset given (as written), for the run folder's record."""
        return {k: v if k == "subset" else str(v) for k in ("root", "test_root", "path", "subset")
                if (v := getattr(self, k)) is not None}


Loader = Callable[[Path | None, bool], tuple[ImageData, ImageData]]
OwnLoader = Callable[[Source], tuple[ImageData, ImageData | None]]


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: its loader, the resolution used when the caller gives none (None: native) and whether
    it reads the user's own files (its loader then takes a :class:`Source`)."""

    name: str
    load: Loader | OwnLoader
    default_resolution: int | None = None
    own: bool = False


DATASETS: dict[str, Dataset] = {}


def register_dataset(name: str, default_resolution: int | None = None, own: bool = False) -> Callable:
    """Register ``fn(root, download) -> (train, test)`` under ``name``; ``root`` None means the default place. With
    ``own``: ``fn(source) -> (train, test or None)`` (:class:`Source`)."""

    def deco(fn: Loader | OwnLoader) -> Loader | OwnLoader:
        DATASETS[name] = Dataset(name, fn, default_resolution, own)
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
    test_root: str | Path | None = None,
    path: str | Path | None = None,
    subset: int | None = None,
    run_dir: str | Path | None = None,
) -> Splits:
    """Load ``name`` into memory as uint8 tensors, ``resolution``² pixels (default: the dataset's own) and
    ``channels`` channels; validation = a stratified ``val_fraction`` of train drawn by ``split_seed``.

    Datasets of the user's own files only: ``test_root`` (a folder of test images), ``path`` (an ``.npz`` file),
    ``subset`` (the most images read, a stratified sample drawn by ``split_seed``) and ``run_dir`` (the run folder:
    a folder's decoded images are cached there, and what was loaded is recorded there)."""
    if name not in DATASETS:
        raise UserError(f"dataset: unknown name {name!r} (known: {', '.join(sorted(DATASETS))})")
    if not 0 < val_fraction < 1:
        raise UserError(f"dataset {name}: val_fraction: must be between 0 and 1 (exclusive), got {val_fraction}")
    if channels < 1:
        raise UserError(f"dataset {name}: channels: must be at least 1, got {channels}")
    if resolution is not None and resolution < 1:
        raise UserError(f"dataset {name}: resolution: must be a positive number of pixels, got {resolution}")
    entry = DATASETS[name]
    res = resolution or entry.default_resolution
    if entry.own:
        if subset is not None and subset < 2:
            raise UserError(f"dataset {name}: subset: must be at least 2 images, got {subset}")
        source = Source(name, _path(root), _path(test_root), _path(path), subset, res, channels, split_seed,
                        _path(run_dir))
        train, test = entry.load(source)
    else:
        given = next((k for k, v in zip(OWN_KEYS, (test_root, path, subset)) if v is not None), None)
        if given is not None:
            raise UserError(f"dataset {name}: {given}: only the folder and npz datasets (your own images) read it")
        train, test = entry.load(_path(root), download)

    def prepare(d: ImageData) -> ImageData:
        x = d.x if res is None else resize(d.x, res)
        return ImageData(to_channels(x, channels, name), d.y, d.num_classes, name, d.classes)

    held_out = test is None  # then the test set is held out of train; each split is copied out of it once
    train = prepare(train)
    rest, tested = split_off_test(train.y) if held_out else (torch.arange(len(train)), None)
    test = train.subset(tested) if held_out else prepare(test)
    kept, held = stratified_split(train.y[rest], val_fraction, split_seed)
    splits = Splits(train=train.subset(rest[kept]), val=train.subset(rest[held]), test=test)
    if entry.own and run_dir is not None:
        test_set = HELD_OUT if held_out else f"given ({'test_root' if source.test_root else 'x_test, y_test'})"
        write_record(Path(run_dir), splits, {"kind": name, **source.described(), "test": test_set})
    return splits


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)
