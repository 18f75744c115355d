"""Folder datasets: the first load (list, decode, resize, cache) vs the second (list, check, read the run folder's
cache) of a large class-folder tree.

Writes the first N (default 50,000) Fashion-MNIST training images as PNG files into a temporary folder
(``pisearch.data.make_folder``), then loads it twice as ``dataset: {name: folder}`` at the given resolution with the
same run folder, and prints both times, their ratio, the cache size and the CPU model. Needs the Fashion-MNIST IDX
files (``apt-get install dataset-fashion-mnist``, or ``--root``).
Run: ``python benchmarks/folder_cache.py [--images N] [--resolution R] [--channels C] [--root FASHION_ROOT]``.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from pisearch.data import DATASETS, load_dataset
from pisearch.data.folder import CACHE
from pisearch.data.make_folder import write_folder


def cpu_model() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "unknown CPU")


def timed_load(root: Path, run_dir: Path, resolution: int, channels: int) -> tuple[float, object]:
    start = time.perf_counter()
    splits = load_dataset("folder", root=root, resolution=resolution, channels=channels, run_dir=run_dir)
    return time.perf_counter() - start, splits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--root", type=Path, help="Fashion-MNIST IDX files (default: ./data, then the Debian path)")
    args = ap.parse_args()
    train, _ = DATASETS["fashion_mnist"].load(args.root, False)
    with tempfile.TemporaryDirectory(prefix="folder-cache-") as tmp:
        folder, run_dir = Path(tmp) / "images", Path(tmp) / "run"
        start = time.perf_counter()
        write_folder(train.subset(torch.arange(min(args.images, len(train)))), folder)
        size = sum(p.stat().st_size for p in folder.rglob("*.png")) / 1e6
        print(f"wrote {min(args.images, len(train)):,} PNG files ({size:.1f} MB) "
              f"in {time.perf_counter() - start:.1f} s")
        first, a = timed_load(folder, run_dir, args.resolution, args.channels)
        second, b = timed_load(folder, run_dir, args.resolution, args.channels)
        same = all(torch.equal(getattr(a, s).x, getattr(b, s).x) for s in ("train", "val", "test"))
        print(f"first load (list + decode + resize + cache): {first:.2f} s; second load (list + check + cache): "
              f"{second:.2f} s; ratio {first / second:.1f}×; cache {(run_dir / CACHE).stat().st_size / 1e6:.1f} MB "
              f"({args.channels}×{args.resolution}² uint8); identical images: {same}")
    print(f"CPU: {cpu_model()}, {torch.get_num_threads()} torch threads")


if __name__ == "__main__":
    main()
