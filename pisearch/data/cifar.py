"""CIFAR-10 / CIFAR-100 from the official python-pickle layout, as a folder or the ``.tar.gz`` archive."""

from __future__ import annotations

import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pisearch.data.images import ImageData
from pisearch.data.registry import data_root, missing, register_dataset
from pisearch.errors import UserError

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps its batches and labels."""

    name: str
    folder: str                   # e.g. cifar-10-batches-py (also the top folder inside the archive)
    archive: str                  # e.g. cifar-10-python.tar.gz
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_key: bytes
    num_classes: int
    torchvision_class: str


CIFAR10 = CifarLayout("cifar10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
                      tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), b"labels", 10, "CIFAR10")
CIFAR100 = CifarLayout("cifar100", "cifar-100-python", "cifar-100-python.tar.gz", ("train",), ("test",),
                       b"fine_labels", 100, "CIFAR100")



class BatchUnpickler(pickle.Unpickler):
    """Reads a CIFAR batch (dicts, lists, bytes and numpy arrays) and refuses every other global, so a crafted
    file cannot run code while it is loaded."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")} | {
        (f"numpy.{core}.{mod}", name) for core in ("core", "_core")
        for mod, name in (("multiarray", "_reconstruct"), ("numeric", "_frombuffer"))}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")


def read_batches(layout: CifarLayout, files: tuple[str, ...], opener, where: Path) -> ImageData:
    """Concatenate pickled batches (``{b"data": (N, 3072) uint8, label_key: [N ints]}``) into one ImageData."""
    xs, ys = [], []
    for f in files:
        try:
            with opener(f"{layout.folder}/{f}") as fh:
                batch = BatchUnpickler(fh, encoding="bytes").load()
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[layout.label_key], dtype=np.int64))
        except Exception as err:  # noqa: BLE001 - whatever a damaged file makes the unpickler raise, it is unreadable
            raise UserError(f"{where}: {layout.folder}/{f}: not a readable CIFAR batch ({err!r})") from None
    return ImageData(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)),
                     layout.num_classes, layout.name)


def load_cifar(layout: CifarLayout, root: Path | None, download: bool) -> tuple[ImageData, ImageData]:
    """``(train, test)`` from ``root/<folder>/`` or, without extracting, ``root/<archive>``."""
    root = data_root() if root is None else root
    folder, archive = root / layout.folder, root / layout.archive
    if not folder.is_dir() and not archive.is_file() and download:
        import torchvision.datasets

        getattr(torchvision.datasets, layout.torchvision_class)(str(root), download=True)
    if folder.is_dir():
        def opener(member: str):
            return open(root / member, "rb")

        return tuple(read_batches(layout, files, opener, root) for files in (layout.train, layout.test))
    if archive.is_file():
        try:
            tar = tarfile.open(archive, "r:gz")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
            raise UserError(f"{archive}: not a readable .tar.gz archive ({err})") from None
        with tar:
            def opener(member: str):
                fh = tar.extractfile(member)
                if fh is None:
                    raise KeyError(member)
                return fh

            return tuple(read_batches(layout, files, opener, archive) for files in (layout.train, layout.test))
    raise missing(layout.name, [folder, archive],
                  f"pass download=True, or put {layout.archive} (from {CIFAR_URL}) or its extracted folder there")


@register_dataset("cifar10")
def cifar10(root: Path | None, download: bool) -> tuple[ImageData, ImageData]:
    """CIFAR-10: 50,000 train / 10,000 test RGB 32×32 images, 10 classes."""
    return load_cifar(CIFAR10, root, download)


@register_dataset("cifar100")
def cifar100(root: Path | None, download: bool) -> tuple[ImageData, ImageData]:
    """CIFAR-100: 50,000 train / 10,000 test RGB 32×32 images, 100 (fine) classes."""
    return load_cifar(CIFAR100, root, download)
