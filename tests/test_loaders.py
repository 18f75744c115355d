"""Every file pisearch reads goes through a loader that turns a damaged file into one UserError line naming it:
generated damage (random bytes, truncations, a folder in its place, an unreadable entry) to each file of a valid
study file, search space, spec JSON and dataset of every on-disk format. A damaged file either still loads (a
truncated text file can be a shorter valid one) or raises a one-line UserError; nothing else escapes."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pisearch.config import read_json, read_text, read_yaml
from pisearch.data import load_dataset
from pisearch.errors import UserError
from pisearch.space import SearchSpace
from pisearch.spec import ArchSpec, net
from pisearch.study import load_study_config

from tests.test_cli_fuzz import DERANDOMIZE, damage, study_text
from tests.test_study import TINY

EXAMPLES = int(os.environ.get("PISEARCH_FUZZ_EXAMPLES", "30"))  # generated cases per file kind


def idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.tobytes()


def jpeg(colour: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (colour, 0, 0)).save(out, "JPEG")
    return out.getvalue()


def cifar_batch(n: int) -> bytes:
    return pickle.dumps({b"data": np.zeros((n, 3072), np.uint8), b"labels": list(range(n))})


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def cifar_files() -> dict[str, bytes]:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {f"cifar-10-batches-py/{n}": cifar_batch(2) for n in names}


def cifar_archive() -> dict[str, bytes]:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for rel, data in cifar_files().items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return {"cifar-10-python.tar.gz": out.getvalue()}


# dataset name -> the files of a minimal valid copy of its on-disk layout
DATASETS = {
    "fashion_mnist": {
        "train-images-idx3-ubyte": idx(np.zeros((4, 28, 28), np.uint8)),
        "train-labels-idx1-ubyte": idx(np.arange(4, dtype=np.uint8)),
        "t10k-images-idx3-ubyte": idx(np.zeros((2, 28, 28), np.uint8)),
        "t10k-labels-idx1-ubyte": idx(np.arange(2, dtype=np.uint8)),
    },
    "cifar10": cifar_files(),
    "cifar10 archive": cifar_archive(),
    "tinyimagenet": {
        "tiny-imagenet-200/wnids.txt": b"n01\nn02\n",
        "tiny-imagenet-200/train/n01/images/a.JPEG": jpeg(10),
        "tiny-imagenet-200/train/n02/images/b.JPEG": jpeg(200),
        "tiny-imagenet-200/val/val_annotations.txt": b"v.JPEG\tn01\t0\t0\t8\t8\n",
        "tiny-imagenet-200/val/images/v.JPEG": jpeg(90),
    },
}
# config-like files: name -> (content, loader)
CONFIGS = {
    "study.yaml": (study_text().encode(), lambda p: load_study_config(p)),
    "space.yaml": (Path(TINY).read_bytes(), lambda p: SearchSpace.load(p)),
    "spec.json": (net("resnet18").to_json().encode(), lambda p: ArchSpec.from_json(read_text(p), source=str(p))),
    "metrics.json": (b'{"dataset": "digits"}', read_json),
    "any.yaml": (b"a: 1\n", read_yaml),
}


DAMAGE = st.one_of(st.tuples(st.just("bytes"), st.binary(max_size=2000)),
                   st.tuples(st.just("truncate"), st.floats(0, 0.999)),
                   st.tuples(st.just("folder"), st.none()), st.tuples(st.just("unreadable"), st.none()))


def check_one_line(err: UserError, names: list[str]) -> None:
    text = str(err)
    assert "\n" not in text, text
    assert any(n in text for n in names), (names, text)


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_damaged_dataset_file_is_one_line_naming_it(dataset):
    files = DATASETS[dataset]
    name = dataset.split()[0]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(rel=st.sampled_from(sorted(files)), how=DAMAGE)
    def walk(rel, how):
        root = Path(tempfile.mkdtemp(prefix="data-"))
        try:
            write_tree(root, files)
            change, data = how
            content = files[rel]
            damage(root / rel, change, int(data * len(content)) if change == "truncate" else data, content)
            try:
                load_dataset(name, root=root, resolution=8, val_fraction=0.5)
            except UserError as err:
                check_one_line(err, [Path(rel).name, "not found"])
        finally:
            shutil.rmtree(root, ignore_errors=True)

    with tempfile.TemporaryDirectory() as valid:  # the undamaged copy loads
        write_tree(Path(valid), files)
        load_dataset(name, root=valid, resolution=8, val_fraction=0.5)
    walk()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_damaged_config_file_is_one_line_naming_it(name):
    content, loader = CONFIGS[name]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=[HealthCheck.too_slow])
    @given(how=DAMAGE)
    def walk(how):
        root = Path(tempfile.mkdtemp(prefix="config-"))
        try:
            path = root / name
            path.write_bytes(content)
            change, data = how
            damage(path, change, int(data * len(content.rstrip())) if change == "truncate" else data, content)
            try:
                loader(path)
            except UserError as err:
                check_one_line(err, [name])
        finally:
            shutil.rmtree(root, ignore_errors=True)

    with tempfile.TemporaryDirectory() as valid:
        (Path(valid) / name).write_bytes(content)
        loader(Path(valid) / name)
    walk()


@pytest.mark.parametrize("top", ["[1, 2]", "3", '"text"', "null"])
def test_json_of_another_top_level_type_is_refused(tmp_path, top):
    (tmp_path / "m.json").write_text(top)
    with pytest.raises(UserError, match=r"m.json: \(top level\): expected a mapping of keys"):
        read_json(tmp_path / "m.json")

