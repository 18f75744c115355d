"""Your own images: ``dataset: {name: folder}`` (class subfolders) and ``{name: npz}`` (NumPy arrays), on tiny folders
and files written here: mixed formats and modes, the held-out test split, the run folder's cache and record, bad data
as one line naming the file, the memory check, the study file's keys through the command line, and a study on a
folder of the digits images that measures exactly what the same study on ``digits`` measures (export included)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import pisearch.data.folder as folder_mod
import pisearch.data.memory as memory_mod
import pisearch.study.runner as runner_mod
from pisearch.data import DATASETS, load_dataset, read_record
from pisearch.data.folder import CACHE, list_images
from pisearch.data.make_folder import write_folder
from pisearch.errors import UserError
from pisearch.study import load_dashboard_data, load_study_config, run_study
from pisearch.study.config import DatasetConfig

from tests.test_cli_fuzz import DERANDOMIZE, damage, invoke, snapshot
from tests.test_study import TINY_STUDY

EXAMPLES = 12  # generated command-line cases


def image(path: Path, mode: str, size: tuple[int, int] = (12, 10), seed: int = 0, fmt: str | None = None) -> None:
    """A random image of ``mode`` (PIL) and ``size`` (w, h) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path, fmt)


def small_folder(root: Path, per_class: int = 5) -> Path:
    """cat/ and dog/: grey PNGs, RGB JPEGs of another size, a palette GIF, an RGBA PNG and a nested folder, beside
    files that are not images (skipped)."""
    for c, name in enumerate(("cat", "dog")):
        for i in range(per_class):
            image(root / name / f"{i}.png", "L", seed=10 * c + i)
            image(root / name / f"{i}b.jpg", "RGB", (20, 14), seed=100 + 10 * c + i)
    image(root / "cat" / "p.gif", "P", (9, 9), seed=7)
    image(root / "dog" / "sub" / "rgba.png", "RGBA", seed=8)
    (root / "dog" / "notes.txt").write_text("not an image")
    image(root / "dog" / ".hidden.png", "L")
    (root / "README.md").write_text("loose files at the top are not a class")
    return root


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> Path:
    """The digits train and test sets written as PNG folders (``python -m pisearch.data.make_folder digits OUT``)."""
    out = tmp_path_factory.mktemp("digits-folder")
    for split, data in zip(("train", "test"), DATASETS["digits"].load(None, False)):
        write_folder(data, out / split)
    return out


def test_mixed_formats_and_modes_load_in_file_name_order(tmp_path):
    root = small_folder(tmp_path / "imgs")
    listing = list_images(root)
    assert listing.classes == ("cat", "dog") and len(listing.files) == 22
    assert listing.files[:4] == ("cat/0.png", "dog/0.png", "cat/0b.jpg", "dog/0b.jpg")  # by name, then class
    s = load_dataset("folder", root=root, resolution=16)
    assert s.train.x.shape[1:] == (3, 16, 16) and s.train.x.dtype == torch.uint8
    assert len(s.train) + len(s.val) + len(s.test) == 22 and s.train.classes == ("cat", "dog")
    grey = load_dataset("folder", root=root, resolution=16, channels=1)
    assert grey.train.x.shape[1] == 1
    first = folder_mod.read_image(root / "cat" / "0.png")  # grey files are replicated, as the built-in datasets
    assert first.shape[0] == 1 and folder_mod.read_image(root / "cat" / "0b.jpg").shape[0] == 3


def test_without_test_root_a_stratified_fifth_is_held_out_whatever_the_split_seed(tmp_path):
    root = small_folder(tmp_path / "imgs", per_class=10)
    a = load_dataset("folder", root=root, resolution=8, split_seed=0)
    b = load_dataset("folder", root=root, resolution=8, split_seed=5)
    assert torch.equal(a.test.x, b.test.x) and torch.bincount(a.test.y).tolist() == [4, 4]  # of 21 each
    assert not torch.equal(a.val.x, b.val.x)


def test_a_folder_of_the_digits_images_is_digits(digits_folder):
    for resolution, channels in ((16, 3), (6, 1)):  # up (bilinear) and down (antialiased), replicated and grey
        kw = {"resolution": resolution, "channels": channels, "split_seed": 2}
        a = load_dataset("digits", **kw)
        b = load_dataset("folder", root=digits_folder / "train", test_root=digits_folder / "test", **kw)
        for split in ("train", "val", "test"):
            assert torch.equal(getattr(a, split).x, getattr(b, split).x)
            assert torch.equal(getattr(a, split).y, getattr(b, split).y)


def test_second_load_reads_the_cache_keyed_by_file_list_and_sizes(tmp_path, monkeypatch):
    root, run = small_folder(tmp_path / "imgs"), tmp_path / "run"
    first = load_dataset("folder", root=root, resolution=8, run_dir=run)
    decoded = []
    real = folder_mod.decode
    monkeypatch.setattr(folder_mod, "decode", lambda *a: decoded.append(1) or real(*a))
    again = load_dataset("folder", root=root, resolution=8, run_dir=run)
    assert not decoded and torch.equal(first.train.x, again.train.x)
    image(root / "cat" / "9.png", "L", seed=99)  # another file: decoded again
    load_dataset("folder", root=root, resolution=8, run_dir=run)
    load_dataset("folder", root=root, resolution=12, run_dir=run)  # other pixels: decoded again
    (run / CACHE).write_bytes(b"damaged")  # a damaged cache is rebuilt, not an error
    load_dataset("folder", root=root, resolution=12, run_dir=run)
    assert len(decoded) == 3
    record, samples = read_record(run)
    assert record["kind"] == "folder" and record["classes"] == ["cat", "dog"] and record["resolution"] == 12
    assert sum(record["images"].values()) == 23 and record["test"].startswith("held out")
    assert samples.startswith(b"\x89PNG")


def _corrupt(r: Path) -> str:
    (r / "cat" / "1.png").write_bytes(b"not an image")
    return "cat/1.png: not a readable image"


def _truncated(r: Path) -> str:
    data = (r / "dog" / "2b.jpg").read_bytes()
    (r / "dog" / "2b.jpg").write_bytes(data[: len(data) // 2])
    return "dog/2b.jpg: not a readable image"


def _empty_class(r: Path) -> str:
    (r / "bird").mkdir()
    (r / "bird" / "list.txt").write_text("no images here")
    return "bird: class folder holds no images"


def _single_class(r: Path) -> str:
    shutil.rmtree(r / "dog")
    return "one class folder only (cat); a classifier needs two or more"


def _no_images(r: Path) -> str:
    for name in ("cat", "dog"):
        shutil.rmtree(r / name)
    image(r / "loose.png", "L")
    return "no images in class subfolders"


@pytest.mark.parametrize("change", [_corrupt, _truncated, _empty_class, _single_class, _no_images])
def test_bad_folder_is_one_line_naming_the_file(tmp_path, change):
    root = small_folder(tmp_path / "imgs")
    expected = change(root)
    with pytest.raises(UserError) as err:
        load_dataset("folder", root=root, resolution=8, run_dir=tmp_path / "run")
    assert "\n" not in str(err.value) and expected in str(err.value), str(err.value)
    assert not (tmp_path / "run").exists()


def test_test_root_must_hold_the_same_classes(tmp_path):
    root, test = small_folder(tmp_path / "imgs"), small_folder(tmp_path / "test", per_class=2)
    s = load_dataset("folder", root=root, test_root=test, resolution=8)
    assert len(s.test) == 10 and len(s.train) + len(s.val) == 22
    image(test / "fish" / "0.png", "L")
    with pytest.raises(UserError, match=r"test: class folders differ from .*imgs's \(missing: none; .*: fish\)"):
        load_dataset("folder", root=root, test_root=test, resolution=8)


def test_too_large_is_refused_before_reading(tmp_path, monkeypatch):
    root = small_folder(tmp_path / "imgs")
    monkeypatch.setattr(memory_mod, "available_bytes", lambda: 100_000)
    with monkeypatch.context() as m, pytest.raises(UserError, match=(
            r"imgs: 22 images of 3×64×64 uint8 need about 0\.5 MB of memory while loading, more than the 0\.1 MB "
            r"available; lower the search space's resolution or read a stratified part with dataset.subset \(about 4 "
            r"images fit\)")):
        m.setattr(folder_mod, "decode", lambda *a: pytest.fail("decoded before the memory check"))
        load_dataset("folder", root=root, resolution=64)
    assert len(load_dataset("folder", root=root, resolution=8, subset=10).train) > 0  # 10 × 192 bytes fit


def test_subset_reads_a_stratified_part(tmp_path):
    root = small_folder(tmp_path / "imgs", per_class=10)
    s = load_dataset("folder", root=root, resolution=8, subset=20)
    counts = torch.bincount(torch.cat([s.train.y, s.val.y, s.test.y]))
    assert counts.tolist() == [10, 10]


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_uint8_float_channels_last_and_test_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 10, 10, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    a = load_dataset("npz", path=_npz(tmp_path / "a.npz", x=x, y=y), resolution=8)
    b = load_dataset("npz", path=_npz(tmp_path / "b.npz", x=x / 255.0, y=y), resolution=8)
    assert torch.equal(a.train.x, b.train.x) and len(a.test) == 8  # float [0, 1] → the same uint8; 20 % held out
    names = np.array(["a", "b", "c", "d"])
    c = load_dataset("npz", path=_npz(tmp_path / "c.npz", x=x[..., 0], y=y, x_test=x[:6, ..., 0], y_test=y[:6],
                                      classes=names), resolution=8, channels=1, run_dir=tmp_path / "run")
    assert c.test.x.shape == (6, 1, 8, 8) and len(c.train) + len(c.val) == 40 and c.train.classes == tuple(names)
    assert read_record(tmp_path / "run")[0]["test"] == "given (x_test, y_test)"


NPZ_CASES = {
    "nan": ({"x": np.full((4, 5, 5), np.nan), "y": np.arange(4) % 2}, "x: 100 NaN values (the first in image 0)"),
    "float range": ({"x": np.full((4, 5, 5), 2.0), "y": np.arange(4) % 2}, "float pixel values must lie in [0, 1]"),
    "dtype": ({"x": np.zeros((4, 5, 5), np.int64), "y": np.arange(4) % 2}, "x: dtype int64; expected uint8"),
    "shape": ({"x": np.zeros((4, 5), np.uint8), "y": np.arange(4) % 2}, "x: expected N×H×W or N×H×W×C"),
    "channels": ({"x": np.zeros((4, 5, 5, 4), np.uint8), "y": np.arange(4) % 2}, "x: 4 channels"),
    "label count": ({"x": np.zeros((4, 5, 5), np.uint8), "y": np.arange(3)}, "y: expected 4 integer labels"),
    "negative label": ({"x": np.zeros((4, 5, 5), np.uint8), "y": np.array([0, 1, -1, 0])}, "found -1"),
    "absent class": ({"x": np.zeros((4, 5, 5), np.uint8), "y": np.array([0, 2, 2, 0])}, "no image of class 1"),
    "one class": ({"x": np.zeros((4, 5, 5), np.uint8), "y": np.zeros(4, int)}, "y: one class only"),
    "test label": ({"x": np.zeros((4, 5, 5), np.uint8), "y": np.arange(4) % 2, "x_test": np.zeros((2, 5, 5), np.uint8),
                    "y_test": np.array([0, 5])}, "y_test: label 5 out of range (y has classes 0…1)"),
    "x_test alone": ({"x": np.zeros((4, 5, 5), np.uint8), "y": np.arange(4) % 2,
                      "x_test": np.zeros((2, 5, 5), np.uint8)}, "no array 'y_test'"),
    "unknown array": ({"X": np.zeros((4, 5, 5), np.uint8), "y": np.arange(4)}, "unknown array 'X'"),
}


@pytest.mark.parametrize("case", sorted(NPZ_CASES))
def test_bad_npz_is_one_line_naming_file_and_array(tmp_path, case):
    arrays, expected = NPZ_CASES[case]
    path = _npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(UserError) as err:
        load_dataset("npz", path=path, resolution=8)
    assert str(err.value).startswith(str(path)) and expected in str(err.value) and "\n" not in str(err.value)


def test_own_data_keys_in_the_study_file():
    config = DatasetConfig(name="folder", root="imgs", test_root="test", subset=100)
    assert config.arguments()["test_root"] == "test"
    plain = DatasetConfig().model_dump(mode="json")  # a study stored before these keys existed is the same study
    assert not {"test_root", "path", "subset"} & set(plain)
    with pytest.raises(UserError, match="dataset digits: test_root: only the folder and npz datasets"):
        load_dataset("digits", **DatasetConfig(test_root="x").arguments())
    with pytest.raises(UserError, match="dataset folder: root: required"):
        load_dataset("folder")


def _study(tmp_path: Path, name: str, dataset: dict, **more) -> tuple:
    data = {**TINY_STUDY, "name": name, "dataset": dataset, "n_trials": 3, "seed": 3, "keep_weights": True, **more}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_study_config(path)


def test_study_on_a_digits_folder_measures_what_digits_does_and_exports(digits_folder, tmp_path, monkeypatch):
    own = {"name": "folder", "root": str(digits_folder / "train"), "test_root": str(digits_folder / "test")}
    results = {}
    for name, dataset in (("d", {"name": "digits"}), ("f", own)):
        config, space = _study(tmp_path, name, dataset)
        results[name] = run_study(config, space, out_dir=tmp_path / name, progress=False).trials
    columns = ["number", "spec_hash", "accuracy", "relus"]
    pd.testing.assert_frame_equal(results["d"][columns], results["f"][columns])  # same images, split and training
    monkeypatch.setattr(folder_mod, "decode", lambda *a: pytest.fail("decoded again instead of the cache"))
    config, space = _study(tmp_path, "f", own)
    run_study(config, space, out_dir=tmp_path / "f", progress=False)  # resumed: reads the run folder's cache
    data = load_dashboard_data(tmp_path / "f")
    assert data.facts["dataset classes"] == "10: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    assert data.facts["dataset images"].startswith("train 1,295, validation 143, test 359 (test set: given")
    assert "id='samples'" in (tmp_path / "f" / "dashboard.html").read_text()
    code, err = invoke(tmp_path, ["export", "f", "--trial", "0", "--out", "model"])
    assert code == 0, err
    exported = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert exported["classes"] == [str(i) for i in range(10)]
    assert exported["dataset_arguments"]["root"] == str((digits_folder / "train").resolve())
    lin = ["linearize", "model", "--method", "naive", "--budget", "50%", "--epochs", "0.02", "--search-epochs", "0.02"]
    monkeypatch.undo()  # linearize reads the folder itself (an export need not sit beside its study's run folder)
    code, err = invoke(tmp_path, [*lin, "-o", "lin"])  # the export says where its images are: no --dataset needed
    assert code == 0, err
    assert json.loads((tmp_path / "lin" / "metrics.json").read_text())["dataset_arguments"] == exported[
        "dataset_arguments"]
    (tmp_path / "model" / "metrics.json").write_text(json.dumps({**exported, "dataset_arguments": {"subset": "ten"}}))
    code, err = invoke(tmp_path, [*lin, "-o", "lin2"])
    assert code == 2 and "metrics.json: dataset_arguments: subset:" in err and len(err.strip().splitlines()) == 1
    assert "## Classes" in (tmp_path / "model" / "MODEL_CARD.md").read_text()
    code, err = invoke(tmp_path, ["export", "f", "--trial", "0", "--retrain-epochs", "1", "--out", "again"])
    assert code == 0, err                            # retrained on the study's own folder, its test_root included
    retrained = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert retrained["dataset"] == "folder" and 0 <= retrained["accuracy"] <= 1


def test_a_refused_new_study_leaves_no_run_folder_not_even_its_image_cache(tmp_path, monkeypatch):
    def refuse(*args):
        raise UserError("refused after the images were decoded")

    monkeypatch.setattr(runner_mod, "enqueued_trials", refuse)
    config, space = _study(tmp_path, "r", {"name": "folder", "root": str(small_folder(tmp_path / "imgs"))})
    with pytest.raises(UserError, match="refused after"):
        run_study(config, space, out_dir=tmp_path / "runs" / "r", progress=False)
    assert not (tmp_path / "runs").exists()  # the cache was made inside the new run folder, which never appeared
    monkeypatch.undo()
    run_study(config, space, out_dir=tmp_path / "runs" / "r", progress=False)
    assert (tmp_path / "runs" / "r" / CACHE).is_file() and (tmp_path / "runs" / "r" / "trials.csv").is_file()


# ---- the command line on the new keys: bad values and damaged images exit 2 with one line, changing nothing ------
KEY_BAD = {
    "root": ["missing", "f", "imgs/cat", "imgs/cat/0.png", "empty", ""],
    "test_root": ["missing", "f", "imgs/cat", "empty"],
    "path": ["missing", "f", "imgs", "imgs/cat/0.png"],
    "subset": [0, -3, 1, "ten", 2.5, True],
    "name": ["npz", "folders"],
}


@pytest.fixture(scope="module")
def walk_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("own-walk")
    small_folder(root / "imgs", per_class=2)
    (root / "empty").mkdir()
    (root / "f").write_text("a regular file\n")
    body = {**TINY_STUDY, "n_trials": 1, "dataset": {"name": "folder", "root": "imgs", "resolution": 16}}
    (root / "s.yaml").write_text(yaml.safe_dump(body))
    return root


def _apply(case: Path, what: str, how) -> None:
    if what == "key":
        key, value = how
        body = yaml.safe_load((case / "s.yaml").read_text())
        body["dataset"][key] = value
        if key == "path":
            body["dataset"] = {"name": "npz", "path": value}
        (case / "s.yaml").write_text(yaml.safe_dump(body))
    else:
        rel, (change, data) = how
        content = (case / rel).read_bytes()
        damage(case / rel, change, data, content)


CASES = st.one_of(
    st.tuples(st.just("key"), st.sampled_from([(k, v) for k, values in KEY_BAD.items() for v in values])),
    st.tuples(st.just("file"), st.tuples(st.sampled_from(["imgs/cat/0.png", "imgs/dog/1b.jpg", "imgs/cat/p.gif"]),
                                         st.one_of(st.tuples(st.just("bytes"), st.binary(max_size=300)),
                                                   st.tuples(st.just("truncate"), st.integers(0, 40)),
                                                   st.tuples(st.just("unreadable"), st.none())))))


def test_cli_walk_of_the_new_keys_and_images(walk_template):
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=[HealthCheck.too_slow])
    @given(case=CASES)
    def walk(case):
        folder = Path(tempfile.mkdtemp(prefix="own-case-"))
        try:
            shutil.copytree(walk_template, folder, dirs_exist_ok=True, symlinks=True)
            _apply(folder, *case)
            before = snapshot(folder)
            code, err = invoke(folder, ["create", "s.yaml", "--out", "out"])
            lines = err.strip().splitlines()
            assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (case, err)
            assert "Traceback" not in err and snapshot(folder) == before, case
            if case[0] == "file":
                assert case[1][0] in lines[0], (case, err)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    walk()
