"""Write a registered dataset as a folder of class subfolders, the layout ``dataset: {name: folder}`` reads::

    python -m pisearch.data.make_folder digits OUT      # OUT/train/<class>/00000.png …, OUT/test/<class>/…

Images are written at their native size as PNG (lossless: grey stays grey), named by their position so the folder
loader reads them back in the source's order; class folders are the labels, zero-padded (``0``…``9``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pisearch.data import DATASETS
from pisearch.data.images import ImageData
from pisearch.data.record import replacing
from pisearch.errors import UserError


def write_folder(data: ImageData, out: Path, suffix: str = ".png") -> None:
    """Write every image of ``data`` as ``out/<label>/<position><suffix>`` (a format Pillow picks by suffix)."""
    from PIL import Image

    digits = len(str(max(data.num_classes - 1, 0)))
    width = len(str(max(len(data) - 1, 0)))
    for i in tqdm(range(len(data)), desc=f"writing {out}", unit="image", disable=None, leave=False):
        image = data.x[i]
        pixels = image[0].numpy() if len(image) == 1 else image.permute(1, 2, 0).contiguous().numpy()
        with replacing(out / f"{int(data.y[i]):0{digits}d}" / f"{i:0{width}d}{suffix}") as fh:
            Image.fromarray(pixels).save(fh, format=Image.registered_extensions()[suffix])


def main(argv: list[str] | None = None) -> None:
    """``NAME OUT [--root ROOT] [--limit N] [--suffix .png]``: write ``NAME``'s train and test sets under ``OUT``."""
    parser = argparse.ArgumentParser(prog="python -m pisearch.data.make_folder", description=__doc__.split("::")[0])
    parser.add_argument("name", choices=sorted(n for n, d in DATASETS.items() if not d.own))
    parser.add_argument("out", type=Path)
    parser.add_argument("--root", type=Path, help="where the dataset's files are (as dataset.root)")
    parser.add_argument("--limit", type=int, help="write at most the first N images of each split")
    parser.add_argument("--suffix", default=".png", help="image format by file suffix (.png, .jpg, …)")
    args = parser.parse_args(argv)
    try:
        for split, data in zip(("train", "test"), DATASETS[args.name].load(args.root, False)):
            write_folder(data if args.limit is None else data.subset(torch.arange(min(args.limit, len(data)))),
                         args.out / split, args.suffix)
    except UserError as err:
        sys.exit(f"error: {err}")
    print(f"wrote {args.out}/train and {args.out}/test: dataset: {{name: folder, root: {args.out}/train, "
          f"test_root: {args.out}/test}}")


if __name__ == "__main__":
    main()
