"""What a dataset of the user's own files was, recorded in the run folder: ``dataset.json`` (kind, paths, images per
split, class names, pixels) and ``samples.png`` (a grid of training images per class, as the networks see them).

The dashboard shows both in its study facts and an export names its outputs with the class names.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

import torch

from pisearch.config import read_bytes, read_json
from pisearch.data.images import ImageData, Splits
from pisearch.errors import UserError

RECORD = "dataset.json"
SAMPLES = "samples.png"
GRID_COLUMNS = 8     # training images shown per class
GRID_ROWS = 20       # classes shown (the first ones)
CELL_MIN = 32        # pixels per shown image at least (small images are enlarged, nearest neighbour)
LABEL_WIDTH = 110    # pixels left of each row for the class label


@contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """A binary file handle whose contents replace ``path`` in one rename when the block ends (readers never see half
    a file; nothing is left if the block raises); a folder that cannot be written is a UserError naming it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: workers may share a run folder
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            yield fh
        tmp.replace(path)
    except BaseException as err:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise UserError(f"{path}: cannot write it ({err.strerror or err})") from None
        raise


def class_names(data: ImageData) -> list[str]:
    """The name of each class of ``data`` (its label as text where the data names none)."""
    return list(data.classes) or [str(i) for i in range(data.num_classes)]


def write_record(run_dir: Path, splits: Splits, where: dict) -> None:
    """Write ``dataset.json`` (``where``, then images per split, classes and pixels) and ``samples.png`` into
    ``run_dir``."""
    _, channels, height, width = splits.train.x.shape
    record = {**where, "images": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
              "classes": class_names(splits.train), "resolution": height, "channels": channels}
    with replacing(run_dir / RECORD) as fh:
        fh.write(json.dumps(record, indent=1, ensure_ascii=False).encode())
    with replacing(run_dir / SAMPLES) as fh:
        fh.write(sample_grid(splits.train))


def read_record(run_dir: Path | None) -> tuple[dict | None, bytes | None]:
    """``dataset.json`` and ``samples.png`` of a run folder: each None where the run recorded none (a built-in
    dataset, a storage without run folder); a damaged file is a UserError naming it."""
    if run_dir is None or not (run_dir / RECORD).is_file():
        return None, None
    samples = read_bytes(run_dir / SAMPLES) if (run_dir / SAMPLES).is_file() else None
    return read_json(run_dir / RECORD), samples


def recorded_classes(run_dir: Path | None) -> list[str]:
    """The class names a run recorded (``classes[i]`` names output ``i``), or ``[]``."""
    record = read_record(run_dir)[0] or {}
    classes = record.get("classes", [])
    return [str(c) for c in classes] if isinstance(classes, list) else []


def sample_grid(data: ImageData) -> bytes:
    """PNG: one row per class (the first :data:`GRID_ROWS`), labelled ``index name`` (or the index alone), of its first
    :data:`GRID_COLUMNS` images in ``data``, each enlarged to at least :data:`CELL_MIN` pixels."""
    from PIL import Image, ImageDraw

    side = data.x.shape[-1]
    scale = -(-CELL_MIN // side)
    cell = side * scale
    rows = min(data.num_classes, GRID_ROWS)
    grid = Image.new("RGB", (LABEL_WIDTH + GRID_COLUMNS * (cell + 2), rows * (cell + 2)), "white")
    draw = ImageDraw.Draw(grid)
    names = class_names(data)
    for row in range(rows):
        top = row * (cell + 2)
        label = names[row] if names[row] == str(row) else f"{row} {names[row]}"
        draw.text((4, top + cell // 2 - 6), label[:16], fill="black")
        for col, index in enumerate(torch.nonzero(data.y == row).flatten()[:GRID_COLUMNS].tolist()):
            grid.paste(_picture(data.x[index], scale), (LABEL_WIDTH + col * (cell + 2), top))
    out = io.BytesIO()
    grid.save(out, "PNG")
    return out.getvalue()


def _picture(image: torch.Tensor, scale: int):
    """A uint8 ``(C, H, W)`` image as a PIL image enlarged ``scale``× (its first 3 channels as RGB, else its first
    as grey)."""
    from PIL import Image

    pixels = (image[:3] if len(image) >= 3 else image[:1]).repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    array = pixels[0].numpy() if len(pixels) == 1 else pixels.permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(array)

