import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pisearch.data import DATASETS, ImageData, load_dataset, resize, stratified_split, to_channels
from pisearch.data.idx import FASHION_DEBIAN, read_idx
from pisearch.errors import UserError


def _rows(d: ImageData) -> set[bytes]:
    return {bytes(img.flatten().tolist()) for img in d.x}


# --- embedded default: digits ---------------------------------------------------------------------------------

def test_digits_are_sklearn_images_with_fixed_test_set():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    a = load_dataset("digits", resolution=8, channels=1, split_seed=0)
    b = load_dataset("digits", resolution=8, channels=1, split_seed=1)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.val.y, b.val.y) or not torch.equal(a.val.x, b.val.x)
    expected = {bytes(np.rint(img * 255 / 16).astype(np.uint8).flatten().tolist()) for img in bunch.images}
    assert _rows(a.train) | _rows(a.val) | _rows(a.test) <= expected
    assert abs(len(a.test) - 0.2 * 1797) <= 10  # stratified: rounding per class


def test_digits_default_is_32px_rgb_replicated_grey():
    s = load_dataset("digits")
    assert s.train.x.shape[1:] == (3, 32, 32) and s.train.x.dtype == torch.uint8
    assert torch.equal(s.train.x[:, 0], s.train.x[:, 2])
    assert s.train.num_classes == 10 and s.train.name == "digits"
    assert s.train.x.float().std() > 30  # real images, not blank


def test_val_split_is_stratified_disjoint_and_seeded():
    y = torch.arange(10).repeat_interleave(torch.arange(10, 20))  # class c has 10 + c images
    kept, held = stratified_split(y, 0.25, seed=3)
    assert sorted(torch.cat([kept, held]).tolist()) == list(range(len(y)))
    assert torch.bincount(y[held], minlength=10).tolist() == [round(0.25 * (10 + c)) for c in range(10)]
    assert torch.equal(held, stratified_split(y, 0.25, seed=3)[1])
    assert not torch.equal(held, stratified_split(y, 0.25, seed=4)[1])


def test_synthetic_is_deterministic_and_balanced():
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    counts = torch.bincount(a.train.y, minlength=10)
    assert counts.min() == counts.max() > 0
    assert set(a.test.y.tolist()) == set(range(10))


# --- transforms -------------------------------------------------------------------------------------------------

def test_resize_keeps_a_flat_image_flat_and_changes_size():
    x = torch.full((2, 1, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(resize(x, 20), torch.full((2, 1, 20, 20), 77, dtype=torch.uint8))
    ramp = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8) * 4
    assert resize(ramp, 4).shape == (1, 1, 4, 4) and resize(ramp, 8) is ramp


def test_rgb_to_grey_uses_luma_and_unknown_conversion_fails():
    x = torch.tensor([100, 200, 50], dtype=torch.uint8).view(1, 3, 1, 1)
    assert to_channels(x, 1, "t").item() == round(0.299 * 100 + 0.587 * 200 + 0.114 * 50)
    with pytest.raises(UserError, match="channels"):
        to_channels(x, 2, "t")


def test_image_data_checks_dtype():
    with pytest.raises(ValueError, match="uint8"):
        ImageData(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), 2, "bad")


# --- errors -----------------------------------------------------------------------------------------------------

def test_unknown_name_lists_known_names():
    with pytest.raises(UserError, match="known: .*cifar10.*digits"):
        load_dataset("imagenet22k")


def test_bad_val_fraction_is_user_error():
    with pytest.raises(UserError, match="val_fraction"):
        load_dataset("synthetic", val_fraction=1.0)


@pytest.mark.parametrize("name, piece", [("cifar10", "cifar-10-python.tar.gz"), ("cifar100", "cifar-100-python"),
                                         ("tinyimagenet", "tiny-imagenet-200"), ("fashion_mnist", "FashionMNIST")])
def test_missing_dataset_says_where_and_how(tmp_path, name, piece):
    with pytest.raises(UserError) as err:
        load_dataset(name, root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and piece in msg and "download=True" in msg


# --- IDX / Fashion-MNIST ----------------------------------------------------------------------------------------

def _write_idx(path: Path, arr: np.ndarray) -> None:
    code = {np.uint8: 0x08}[arr.dtype.type]
    raw = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, ">u4").tobytes() + arr.tobytes()
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(raw)


def _fake_fashion(folder: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (40, 6, 6), dtype=np.uint8),
              "train-labels-idx1-ubyte": np.repeat(np.arange(10, dtype=np.uint8), 4),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (10, 6, 6), dtype=np.uint8),
              "t10k-labels-idx1-ubyte.gz": np.arange(10, dtype=np.uint8)}
    for fname, arr in arrays.items():
        _write_idx(folder / fname, arr)
    return arrays


def test_fashion_mnist_reads_idx_files_gz_or_not(tmp_path):
    arrays = _fake_fashion(tmp_path / "fashion-mnist", np.random.default_rng(0))
    s = load_dataset("fashion_mnist", root=tmp_path, channels=1, val_fraction=0.25)
    assert s.train.x.shape == (30, 1, 6, 6) and len(s.val) == 10
    assert torch.equal(s.test.x[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    assert s.test.y.tolist() == list(range(10))
    pairs = {(bytes(img.flatten().tolist()), int(c)) for d in (s.train, s.val) for img, c in zip(d.x, d.y)}
    images, labels = arrays["train-images-idx3-ubyte.gz"], arrays["train-labels-idx1-ubyte"]
    assert pairs == {(bytes(img.flatten().tolist()), int(c)) for img, c in zip(images, labels)}
    assert load_dataset("fashion_mnist", root=tmp_path, resolution=12).train.x.shape[1:] == (3, 12, 12)


def test_idx_with_bad_magic_is_user_error(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04abcd")
    with pytest.raises(UserError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


@pytest.mark.skipif(not FASHION_DEBIAN.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_installed_fashion_mnist_package():
    s = load_dataset("fashion_mnist", root=FASHION_DEBIAN)
    assert (len(s.train), len(s.val), len(s.test)) == (54_000, 6_000, 10_000)
    assert s.train.x.shape[1:] == (3, 28, 28)
    assert torch.bincount(s.val.y).tolist() == [600] * 10


# --- CIFAR ------------------------------------------------------------------------------------------------------

def _fake_cifar(root: Path, variant: str, rng: np.random.Generator, archive: bool) -> dict[str, dict]:
    if variant == "cifar10":
        folder, files, key, k = "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], \
            b"labels", 10
    else:
        folder, files, key, k = "cifar-100-python", ["train", "test"], b"fine_labels", 100
    batches = {f: {b"data": rng.integers(0, 256, (12, 3072), dtype=np.uint8),
                   key: [int(v) for v in rng.integers(0, k, 12)]} for f in files}
    (root / folder).mkdir(parents=True)
    for f, b in batches.items():
        (root / folder / f).write_bytes(pickle.dumps(b))
    if archive:
        name = "cifar-10-python.tar.gz" if variant == "cifar10" else "cifar-100-python.tar.gz"
        with tarfile.open(root / name, "w:gz") as tar:
            tar.add(root / folder, arcname=folder)
        for f in files:
            (root / folder / f).unlink()
        (root / folder).rmdir()
    return batches


@pytest.mark.parametrize("archive", [False, True])
def test_cifar10_pickles_folder_or_archive(tmp_path, archive):
    batches = _fake_cifar(tmp_path, "cifar10", np.random.default_rng(1), archive)
    s = load_dataset("cifar10", root=tmp_path, val_fraction=0.2)
    assert len(s.train) + len(s.val) == 60 and len(s.test) == 12 and s.test.num_classes == 10
    raw = batches["test_batch"][b"data"]
    assert s.test.x[5, 2, 7, 9].item() == raw[5, 2 * 1024 + 7 * 32 + 9]
    assert s.test.y.tolist() == batches["test_batch"][b"labels"]
    assert not (tmp_path / "cifar-10-batches-py").exists() or not archive  # read without extracting


def test_cifar100_fine_labels(tmp_path):
    batches = _fake_cifar(tmp_path, "cifar100", np.random.default_rng(2), archive=False)
    s = load_dataset("cifar100", root=tmp_path, resolution=16)
    assert s.test.y.tolist() == batches["test"][b"fine_labels"] and s.test.num_classes == 100
    assert s.train.x.shape[1:] == (3, 16, 16)


def test_corrupt_cifar_batch_is_user_error(tmp_path):
    _fake_cifar(tmp_path, "cifar100", np.random.default_rng(3), archive=False)
    (tmp_path / "cifar-100-python" / "test").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="cifar-100-python/test"):
        load_dataset("cifar100", root=tmp_path)


# --- Tiny ImageNet ----------------------------------------------------------------------------------------------

def test_tinyimagenet_folder_layout(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    colours = {"n02": (250, 10, 10), "n01": (10, 10, 250)}   # sorted order: n01 → 0, n02 → 1
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("n02\nn01\n")
    for wnid, rgb in colours.items():
        (base / "train" / wnid / "images").mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (8, 8), rgb).save(base / "train" / wnid / "images" / f"{wnid}_{i}.JPEG")
    Image.new("L", (8, 8), 128).save(base / "val" / "images" / "val_0.JPEG")     # a grey file becomes RGB
    Image.new("RGB", (8, 8), colours["n02"]).save(base / "val" / "images" / "val_1.JPEG")
    (base / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn01\t0\t0\t8\t8\nval_1.JPEG\tn02\t0\t0\t8\t8\n")
    s = load_dataset("tinyimagenet", root=tmp_path, val_fraction=0.2)
    assert s.test.y.tolist() == [0, 1] and s.test.num_classes == 2
    assert s.test.x.shape == (2, 3, 8, 8)
    assert (s.test.x[0].int() - 128).abs().max() <= 3
    assert torch.bincount(s.val.y).tolist() == [1, 1] and len(s.train) == 8
    red = s.train.x[s.train.y == 1].float().mean((0, 2, 3))
    assert red[0] > 200 and red[2] < 60


def test_registry_has_every_documented_dataset():
    assert {"digits", "fashion_mnist", "cifar10", "cifar100", "tinyimagenet", "synthetic"} <= set(DATASETS)
