"""Your own images as NumPy arrays in one ``.npz`` file: ``x`` (N×H×W or N×H×W×C, uint8 or float in [0, 1]) and
``y`` (N integer labels 0…K−1), optionally ``x_test`` / ``y_test`` and ``classes`` (K names). Shapes, dtypes, values
and labels are checked before use, each problem one line naming the file and the array."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from pisearch.data.images import ImageData, stratified_subset
from pisearch.data.memory import check_fits
from pisearch.data.registry import Source, register_dataset
from pisearch.errors import UserError

ARRAYS = ("x", "y", "x_test", "y_test", "classes")
CHANNELS = (1, 3)  # grey or RGB, last axis of a 4-D x


def _open(path: Path) -> np.lib.npyio.NpzFile:
    """The archive at ``path``, read lazily; a missing or unreadable file or another format is a UserError."""
    try:
        arrays = np.load(path, allow_pickle=False)
    except OSError as err:
        raise UserError(f"dataset npz: {path}: cannot read it ({err.strerror or err})") from None
    except (ValueError, EOFError, zipfile.BadZipFile):
        raise UserError(f"{path}: not a NumPy .npz archive (np.savez or np.savez_compressed writes one)") from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise UserError(f"{path}: a single .npy array, expected an .npz file holding x and y (np.savez)")
    return arrays


def _header(arrays: np.lib.npyio.NpzFile, key: str, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the stored array ``key``, from its header alone (nothing else is read)."""
    try:
        with arrays.zip.open(f"{key}.npy") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise UserError(f"{path}: {key}: cannot be read ({' '.join(str(err).split())[:200]})") from None
    return shape, dtype


def _check_memory(arrays: np.lib.npyio.NpzFile, source: Source, path: Path) -> None:
    """Refuse, before reading them, images that would not fit in memory (:func:`check_fits`): the stored arrays (twice
    for floats, scaled to uint8 on the way) and the images at the space's pixels."""
    headers = [_header(arrays, k, path) for k in ("x", "x_test") if k in arrays.files]
    stored = sum(int(np.prod(shape)) * dtype.itemsize * (2 if dtype.kind == "f" else 1) for shape, dtype in headers)
    count = sum(shape[0] if shape else 0 for shape, _ in headers)
    side = source.resolution or max((max(shape[1:3]) for shape, _ in headers if len(shape) >= 3), default=0)
    check_fits(f"dataset npz: {path}", count, (source.channels, side, side), extra=stored)


def _read(arrays: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return arrays[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"{path}: {key}: cannot be read ({' '.join(str(err).split())[:200]})") from None


def images(x: np.ndarray, key: str, path: Path) -> torch.Tensor:
    """``x`` as uint8 ``(N, C, H, W)``: uint8 kept, floats in [0, 1] scaled to 0–255 and rounded."""
    if x.ndim not in (3, 4) or len(x) == 0:
        raise UserError(f"{path}: {key}: expected N×H×W or N×H×W×C images (N ≥ 1), got shape {x.shape}")
    if x.ndim == 4 and x.shape[-1] not in CHANNELS:
        raise UserError(f"{path}: {key}: {x.shape[-1]} channels (last axis); expected 1 (grey) or 3 (RGB)")
    if x.dtype.kind == "f":
        bad = np.isnan(x)
        if bad.any():
            raise UserError(f"{path}: {key}: {int(bad.sum()):,} NaN values (the first in image "
                            f"{int(np.argwhere(bad)[0][0])})")
        low, high = float(x.min()), float(x.max())
        if low < 0 or high > 1:
            raise UserError(f"{path}: {key}: float pixel values must lie in [0, 1], found {low:g} to {high:g}")
        x = np.rint(x * 255).astype(np.uint8)
    elif x.dtype != np.uint8:
        raise UserError(f"{path}: {key}: dtype {x.dtype}; expected uint8 (0–255) or float in [0, 1]")
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t[:, None] if t.dim() == 3 else t.permute(0, 3, 1, 2).contiguous()


def labels(y: np.ndarray, key: str, count: int, path: Path) -> torch.Tensor:
    """``y`` as int64 ``(count,)``: integers, none negative."""
    if y.ndim != 1 or len(y) != count or y.dtype.kind not in "iu":
        raise UserError(f"{path}: {key}: expected {count:,} integer labels (one per image), got {y.dtype} of shape "
                        f"{y.shape}")
    if len(y) and y.min() < 0:
        raise UserError(f"{path}: {key}: labels must be 0 or more, found {int(y.min())}")
    return torch.from_numpy(y.astype(np.int64))


def _class_count(y: torch.Tensor, path: Path) -> int:
    """K = max label + 1, where every class 0…K−1 has an image and K ≥ 2."""
    counts = torch.bincount(y)
    if len(counts) < 2:
        raise UserError(f"{path}: y: one class only (label {int(y[0])}); a classifier needs two or more")
    absent = torch.nonzero(counts == 0).flatten().tolist()
    if absent:
        raise UserError(f"{path}: y: no image of class {absent[0]} (labels must be 0…{len(counts) - 1}, "
                        "each class present)")
    return len(counts)


def _names(arrays: np.lib.npyio.NpzFile, k: int, path: Path) -> tuple[str, ...]:
    if "classes" not in arrays.files:
        return ()
    names = _read(arrays, "classes", path)
    if names.ndim != 1 or len(names) != k or names.dtype.kind not in "US":
        raise UserError(f"{path}: classes: expected {k} strings (one name per class), got {names.dtype} of shape "
                        f"{names.shape}")
    return tuple(str(n) for n in names.tolist())


@register_dataset("npz", own=True)
def npz(source: Source) -> tuple[ImageData, ImageData | None]:
    """``x``/``y`` (and ``x_test``/``y_test``) of the file ``path``, at most ``subset`` of the training images
    (stratified); without ``x_test`` the caller holds a test set out."""
    path = source.required("path")
    with _open(path) as arrays:
        unknown = sorted(set(arrays.files) - set(ARRAYS))
        if unknown:
            raise UserError(f"{path}: unknown array {unknown[0]!r} (expected {', '.join(ARRAYS)})")
        for key in ("x", "y") + (("x_test", "y_test") if {"x_test", "y_test"} & set(arrays.files) else ()):
            if key not in arrays.files:
                raise UserError(f"{path}: no array {key!r} (it holds: {', '.join(arrays.files) or 'nothing'})")
        _check_memory(arrays, source, path)
        x = images(_read(arrays, "x", path), "x", path)
        y = labels(_read(arrays, "y", path), "y", len(x), path)
        k = _class_count(y, path)
        names = _names(arrays, k, path)
        if source.subset is not None and source.subset < len(y):
            picked = stratified_subset(y, source.subset, source.seed)
            x, y = x[picked], y[picked]
        train = ImageData(x, y, k, "npz", names)
        if "x_test" not in arrays.files:
            return train, None
        x_test = images(_read(arrays, "x_test", path), "x_test", path)
        if x_test.shape[1:] != x.shape[1:]:
            raise UserError(f"{path}: x_test: images of shape {tuple(x_test.shape[1:])} (C, H, W) differ from x's "
                            f"{tuple(x.shape[1:])}")
        y_test = labels(_read(arrays, "y_test", path), "y_test", len(x_test), path)
        if int(y_test.max()) >= k:
            raise UserError(f"{path}: y_test: label {int(y_test.max())} out of range (y has classes 0…{k - 1})")
        return train, ImageData(x_test, y_test, k, "npz", names)
