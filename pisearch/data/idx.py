"""IDX files (the MNIST family's format) and Fashion-MNIST read from them."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from pisearch.data.images import ImageData
from pisearch.data.registry import data_root, missing, register_dataset
from pisearch.config import read_bytes
from pisearch.errors import UserError

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")  # Debian/Ubuntu package dataset-fashion-mnist
FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path) -> np.ndarray:
    """The array stored in an IDX file (plain or ``.gz``): magic ``0 0 dtype ndim``, big-endian dims, data."""
    raw = read_bytes(path)
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:  # not gzip, or cut short
            raise UserError(f"{path}: not a readable .gz file ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise UserError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise UserError(f"{path}: IDX file cut short (its header has {ndim} dims)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    count = int(np.prod(dims))
    if len(raw) != 4 + 4 * ndim + count * dtype.itemsize:
        raise UserError(f"{path}: IDX file size does not match its header dims {dims}")
    return np.frombuffer(raw, dtype, count, offset=4 + 4 * ndim).reshape(dims).astype(dtype.newbyteorder("="))


def find_idx(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists."""
    for p in (folder / stem, folder / f"{stem}.gz"):
        if p.is_file():
            return p
    return None


def read_idx_pair(folder: Path, images: str, labels: str, name: str, num_classes: int) -> ImageData:
    """An ``(N, H, W)`` uint8 image file and its ``(N,)`` label file as one grey :class:`ImageData`."""
    x = torch.from_numpy(read_idx(find_idx(folder, images))).unsqueeze(1)
    y = torch.from_numpy(read_idx(find_idx(folder, labels))).long()
    if x.dtype != torch.uint8 or len(x) != len(y):
        raise UserError(f"{folder}: {images} must hold uint8 images, one per label in {labels}")
    return ImageData(x, y, num_classes, name)


@register_dataset("fashion_mnist")
def fashion_mnist(root: Path | None, download: bool) -> tuple[ImageData, ImageData]:
    """Fashion-MNIST (Zalando): 60,000 train / 10,000 test grey 28×28 images, 10 classes, from IDX files in
    ``root`` (also ``root/fashion-mnist``, ``root/FashionMNIST/raw``); default: ``./data`` then the Debian path."""
    base = [root] if root is not None else [data_root(), FASHION_DEBIAN]
    looked = [d for b in base for d in (b, b / "fashion-mnist", b / "FashionMNIST" / "raw")]
    stems = [s for pair in FASHION_FILES.values() for s in pair]
    found = next((d for d in looked if all(find_idx(d, s) for s in stems)), None)
    if found is None and download:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(base[0]), download=True)
        found = base[0] / "FashionMNIST" / "raw"
    if found is None:
        raise missing("fashion_mnist", looked, "install it with `apt-get install dataset-fashion-mnist`, copy "
                      f"{', '.join(stems)} (.gz or not) into the root, or pass download=True")
    return tuple(read_idx_pair(found, *FASHION_FILES[s], "fashion_mnist", 10) for s in ("train", "test"))
