"""Your own images: a folder of class subfolders (torchvision's ``ImageFolder`` layout), any format Pillow reads.

Class ``i`` is the ``i``-th subfolder name in sorted order; images are taken in the order of their path inside
their class folder, then of their class (a folder written with numbered file names keeps its source's order).
Each image is decoded once, resized to the search space's resolution and converted to its channels as the
built-in datasets are (grey and colour files may be mixed); the decoded images are cached in the run folder,
keyed by the folder's file list and sizes, so the next run of the study reads them in seconds.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from pisearch.data.images import ImageData, resize, stratified_subset, to_channels
from pisearch.data.memory import check_fits
from pisearch.data.record import replacing
from pisearch.data.registry import Source, register_dataset
from pisearch.errors import UserError

CACHE = "dataset-cache.pt"  # torch.save format, read back memory-mapped with weights_only
CACHE_VERSION = 1  # bump when what is cached changes
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # read as one channel; others as RGB


@dataclass(frozen=True)
class Listing:
    """The images of a class-folder tree: ``files[k]`` (``class/…``, relative to ``root``) of ``sizes[k]`` bytes
    has label ``labels[k]``, an index into ``classes``; in load order."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[str, ...]
    sizes: tuple[int, ...]
    labels: tuple[int, ...]

    def take(self, index: list[int]) -> Listing:
        """The images at positions ``index``, in that order."""
        return Listing(self.root, self.classes, *(tuple(seq[i] for i in index)
                                                  for seq in (self.files, self.sizes, self.labels)))


@cache
def image_suffixes() -> frozenset[str]:
    """File suffixes Pillow can open (lower case, with the dot)."""
    from PIL import Image

    return frozenset(s.lower() for s in Image.registered_extensions())


def _entries(folder: Path) -> list[os.DirEntry]:
    """The visible entries of ``folder`` sorted by name; an unreadable folder is a UserError naming it."""
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as err:
        raise UserError(f"{folder}: cannot read this folder ({err.strerror or err})") from None


def _images_under(folder: Path, prefix: str = "") -> list[tuple[str, int]]:
    """``(path relative to the class folder, size in bytes)`` of every image file under ``folder``, recursively."""
    found = []
    for entry in _entries(folder):
        if entry.is_dir():
            found += _images_under(Path(entry.path), f"{prefix}{entry.name}/")
        elif "." in entry.name and f".{entry.name.rpartition('.')[2].lower()}" in image_suffixes():
            try:
                found.append((f"{prefix}{entry.name}", entry.stat().st_size))
            except OSError as err:
                raise UserError(f"{entry.path}: cannot read it ({err.strerror or err})") from None
    return found


def list_images(root: Path, key: str = "root") -> Listing:
    """The images under ``root``'s class subfolders (the study file's ``key``); no folder, no images, an empty class
    folder or a single class is a UserError naming the folder."""
    if not root.is_dir():
        what = "not a folder" if root.exists() else "no such folder"
        raise UserError(f"dataset folder: {key}: {root}: {what} (expected one subfolder of images per class)")
    classes = tuple(e.name for e in _entries(root) if e.is_dir())
    per_class = [_images_under(root / c) for c in classes]
    if not any(per_class):
        raise UserError(f"{root}: no images in class subfolders (expected {root}/CLASS/IMAGE, in a format Pillow "
                        "reads: .png, .jpg, …)")
    empty = next((c for c, files in zip(classes, per_class) if not files), None)
    if empty is not None:
        raise UserError(f"{root / empty}: class folder holds no images (remove it, or add its images)")
    if len(classes) < 2:
        raise UserError(f"{root}: one class folder only ({classes[0]}); a classifier needs two or more")
    rows = sorted((rel, label, size) for label, files in enumerate(per_class) for rel, size in files)
    return Listing(root, classes, tuple(f"{classes[label]}/{rel}" for rel, label, _ in rows),
                   tuple(size for *_, size in rows), tuple(label for _, label, _ in rows))


def read_image(path: Path) -> torch.Tensor:
    """One image file as uint8 ``(C, H, W)``: one channel for grey modes, else RGB (alpha dropped, palettes
    expanded); a file Pillow cannot decode (unreadable, truncated, not an image) is a UserError naming it."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # Pillow warns about palettes with transparency, large images, …
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                pixels = np.array(im.convert("L" if im.mode in GREY_MODES else "RGB"))
    except Exception as err:  # noqa: BLE001 - whatever Pillow raises for a damaged file, it is unreadable
        why = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        raise UserError(f"{path}: not a readable image ({why})") from None
    image = torch.from_numpy(pixels)
    return image[None] if image.dim() == 2 else image.permute(2, 0, 1)


def decode(listing: Listing, resolution: int, channels: int) -> torch.Tensor:
    """Every image of ``listing`` as uint8 ``(N, channels, resolution, resolution)``, with a progress bar."""
    out = torch.empty((len(listing.files), channels, resolution, resolution), dtype=torch.uint8)
    bar = tqdm(listing.files, desc=f"decoding {listing.root}", unit="image", disable=None, leave=False)
    for i, rel in enumerate(bar):
        out[i] = to_channels(resize(read_image(listing.root / rel)[None], resolution), channels, "folder")[0]
    return out


def fingerprint(listings: list[Listing], source: Source) -> str:
    """What the cached images depend on: the file list and sizes of each listing and the pixels asked for."""
    h = hashlib.sha256(f"{CACHE_VERSION} {source.resolution} {source.channels}\n".encode())
    for listing in listings:
        h.update(f"{listing.root.resolve()}\n".encode())
        for rel, size, label in zip(listing.files, listing.sizes, listing.labels):
            h.update(f"{label} {rel} {size}\n".encode())
    return h.hexdigest()


def read_cache(run_dir: Path | None, key: str) -> list[torch.Tensor] | None:
    """The cached images (train, then test if any) of the run folder, memory-mapped, when the cache was made for
    ``key``; None when there is none, it is stale or damaged (it is then rebuilt)."""
    path = None if run_dir is None else run_dir / CACHE
    if path is None or not path.is_file():
        return None
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return cached["images"] if cached["key"] == key else None
    except Exception:  # noqa: BLE001 - whatever torch raises for a damaged or foreign cache, it is rebuilt
        return None


def write_cache(run_dir: Path, key: str, images: list[torch.Tensor]) -> None:
    """Cache ``images`` (train, then test) in the run folder under ``key``."""
    with replacing(run_dir / CACHE) as fh:
        torch.save({"key": key, "images": images}, fh)


def _test_listing(root: Path, train: Listing) -> Listing:
    """``test_root``'s images, whose class folders must be train's."""
    test = list_images(root, "test_root")
    if test.classes != train.classes:
        missing, extra = sorted(set(train.classes) - set(test.classes)), sorted(set(test.classes) - set(train.classes))
        raise UserError(f"{root}: class folders differ from {train.root}'s (missing: {', '.join(missing) or 'none'}; "
                        f"not in {train.root}: {', '.join(extra) or 'none'})")
    return test


@register_dataset("folder", default_resolution=32, own=True)
def folder(source: Source) -> tuple[ImageData, ImageData | None]:
    """Images in ``root/<class>/…`` (and ``test_root/<class>/…``), resized to ``source.resolution``², at most
    ``subset`` of root's (stratified); without ``test_root`` the caller holds a test set out."""
    listings = [list_images(source.required("root"))]
    if source.subset is not None and source.subset < len(listings[0].files):
        picked = stratified_subset(torch.tensor(listings[0].labels), source.subset, source.seed).tolist()
        listings[0] = listings[0].take(picked)
    if source.test_root is not None:
        listings.append(_test_listing(source.test_root, listings[0]))
    check_fits(f"dataset folder: {source.root}", sum(len(ls.files) for ls in listings),
               (source.channels, source.resolution, source.resolution))
    key = fingerprint(listings, source)
    images = read_cache(source.run_dir, key)
    if images is None:
        images = [decode(ls, source.resolution, source.channels) for ls in listings]
        if source.run_dir is not None:
            write_cache(source.run_dir, key, images)
    data = [ImageData(x, torch.tensor(ls.labels, dtype=torch.int64), len(ls.classes), "folder", ls.classes)
            for x, ls in zip(images, listings)]
    return data[0], data[1] if len(data) > 1 else None
