"""Bad input through the command line: one line on stderr, exit code 2, no traceback, the storage unchanged.

Every case runs ``pisearch.cli.main`` (what the ``pisearch`` script runs) in a forked child process with its
own argv, working directory and stderr; the modules are imported once, before forking, to keep 30 cases fast.
A few cases also run through the installed ``pisearch`` script to show that the forked runs behave alike."""

import os
import pickle
import re
import shutil
import sqlite3
import subprocess
import sys
import traceback
from pathlib import Path

import optuna
import pytest
import torch
import yaml

import pisearch.cli
from pisearch.study import load_study_config
import pisearch.study.runner as runner_mod
from pisearch.study.runner import prepare_study

from tests.test_study import TINY_STUDY

ROOT = Path(__file__).resolve().parents[1]
GOOD = {**TINY_STUDY, "n_trials": 2}
UNREACHABLE = "postgresql+psycopg://me:s3cret@127.0.0.1:1/db"


class _Opens:
    """Unpickling this calls open("pwned", "w"): a harmless stand-in for the code a crafted pickle can run."""

    def __reduce__(self):
        return open, ("pwned", "w")


CRAFTED_CIFAR_BATCH = pickle.dumps({b"data": _Opens(), b"labels": [0]})


def study(**changes) -> str:
    return yaml.safe_dump({**GOOD, **changes})


# id -> (pisearch arguments, files to write in the case folder, text the one stderr line must contain).
# In arguments and files, {db} is the case's copy of a SQLite storage holding study "t" with one trial.
CASES = {
    "broken YAML": (["run", "s.yaml", "--storage", "{db}"], {"s.yaml": "name: t\nspace: [unclosed\n"},
                    "s.yaml: (file): not valid YAML"),
    "empty study file": (["run", "s.yaml", "--storage", "{db}"], {"s.yaml": ""}, "got an empty file"),
    "unknown key": (["run", "s.yaml", "--storage", "{db}"], {"s.yaml": study(colour=1)}, "colour: unknown key"),
    "wrong type": (["run", "s.yaml", "--storage", "{db}"], {"s.yaml": study(n_trials="many")}, "n_trials:"),
    "dataset resolution not the space's": (["run", "s.yaml", "--storage", "{db}"], {
        "s.yaml": study(dataset={"name": "synthetic", "resolution": 32})},
        "dataset.resolution: 32 differs from the search space's resolution 16"),
    "negative epochs": (["run", "s.yaml", "--storage", "{db}"], {"s.yaml": study(fidelity={"epochs": -1})},
                        "fidelity.epochs:"),
    "negative depth": (["run", "s.yaml", "--storage", "{db}"], {
        "s.yaml": study(space="sp.yaml"),
        "sp.yaml": "resolution: 16\nwidths: {base: [4, 8]}\nstages: {depth: [{low: -1, high: 2}]}\n"},
        "sp.yaml: stages.depth[0]: range low: expected an integer ≥ 1, got -1"),
    "unknown sampler": (["run", "s.yaml", "--storage", "{db}"], {"s.yaml": study(sampler={"name": "cmaes"})},
                        "sampler.name:"),
    "unknown objective": (["run", "s.yaml", "--storage", "{db}"],
                          {"s.yaml": study(objectives=["accuracy", "speed"])}, "unknown objective 'speed'"),
    "missing space file": (["run", "s.yaml", "--storage", "{db}"], {"s.yaml": study(space="nope.yaml")},
                           "space: no such search-space file 'nope.yaml'"),
    "missing study file": (["run", "nope.yaml", "--storage", "{db}"], {}, "file 'nope.yaml' does not exist"),
    "unknown dataset": (["run", "s.yaml", "--storage", "{db}"], {"s.yaml": study(dataset={"name": "imagenet99"})},
                        "dataset: unknown name 'imagenet99'"),
    "missing dataset": (["run", "s.yaml", "--storage", "{db}"],
                        {"s.yaml": study(dataset={"name": "cifar10", "root": "no-data-here"})},
                        "dataset cifar10: not found"),
    "crafted CIFAR pickle": (["run", "s.yaml", "--storage", "{db}"], {
        "s.yaml": study(dataset={"name": "cifar10", "root": "."}),
        "cifar-10-batches-py/data_batch_1": CRAFTED_CIFAR_BATCH}, "data_batch_1: not a readable CIFAR batch"),
    "rule budget below smallest network": (["run", "s.yaml", "--storage", "{db}"],
                                           {"s.yaml": study(baselines={"deepreshape": {"budgets": [100]}})},
                                           "baselines.deepreshape.budgets[0]: budget: 100 ReLUs is below the "
                                           "smallest network the rule makes"),
    "unknown baseline network": (["run", "s.yaml", "--storage", "{db}"],
                                 {"s.yaml": study(baselines={"nets": ["resnet99"]})}, "unknown network 'resnet99'"),
    "budget window reversed": (["run", "s.yaml", "--storage", "{db}"],
                               {"s.yaml": study(budget={"min_relus": 10, "max_relus": 5})},
                               "budget: min_relus 10 is larger than max_relus 5"),
    "grace period not longer than heartbeat": (
        ["run", "s.yaml", "--storage", "{db}"],
        {"s.yaml": study(storage={"heartbeat_interval_s": 5, "grace_period_s": 5})},
        "storage: grace_period_s 5 must be longer than heartbeat_interval_s 5"),
    "study name clash": (["run", "s.yaml", "--storage", "{db}"], {"s.yaml": study(seed=99)},
                         "study name clash: storage sqlite:///"),
    "study name clash on create": (["create", "s.yaml", "--storage", "{db}"],
                                   {"s.yaml": study(fidelity={"epochs": 2})}, "differs in: fidelity"),
    "unreachable storage": (["run", "s.yaml", "--storage", UNREACHABLE], {"s.yaml": study()},
                            "storage postgresql+psycopg://me:***@127.0.0.1:1/db:"),
    "unknown storage kind": (["run", "s.yaml", "--storage", "redis://localhost/0"], {"s.yaml": study()},
                             "unknown kind of storage URL"),
    "storage in a missing folder": (["run", "s.yaml", "--storage", "sqlite:///no/such/folder/x.db"],
                                    {"s.yaml": study()}, "cannot open it"),
    "worker: unknown study": (["worker", "--storage", "{db}", "--study", "nope"], {},
                              "no study 'nope' (it holds: t, plain)"),
    "worker: unreachable storage": (["worker", "--storage", UNREACHABLE, "--study", "t"], {}, "me:***@127.0.0.1"),
    "worker: study not made by pisearch": (["worker", "--storage", "{db}", "--study", "plain"], {},
                                           "study 'plain' has no stored config"),
    "count: bad spec JSON": (["count", "bad.json"], {"bad.json": "{not json"}, "bad.json: not valid JSON"),
    # issue 31: files are read as strictly as YAML reads a mapping (tests/test_strict_yaml.py)
    "study file sets a key twice": (["run", "s.yaml", "--storage", "{db}"], {"s.yaml": study() + "n_trials: 30\n"},
                                    "n_trials: duplicate key (lines "),
    "space file of aliases expanding to millions": (
        ["run", "s.yaml", "--storage", "{db}"], {"s.yaml": study(space="sp.yaml"), "sp.yaml": "a: &a [x, x, x, x]\n"
                                                 + "".join(f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}]\n"
                                                           for a, b in zip("abcdefghi", "bcdefghij"))},
        "sp.yaml: (file): its anchors and aliases expand it to more than 100,000 values"),
    "count: spec JSON sets a key twice": (["count", "d.json"], {"d.json": '{"num_classes": 10,\n "num_classes": 9}'},
                                          "d.json: num_classes: duplicate key (lines 1 and 2"),
    "count: unknown network": (["count", "resnet99"], {}, "unknown network 'resnet99'"),
    "count: missing spec file": (["count", "nope.json"], {}, "nope.json: no such spec file"),
    "rule: budget below smallest network": (["rule", "--budget", "100"], {}, "below the smallest network"),
    "rule: negative budget": (["rule", "--budget", "-5"], {}, "Invalid value for '--budget' / '-b': Input should be "
                                                            "greater than or equal to 1"),
    # the four examples of issue 21: a study file that is not text, negative numbers, 0 read as "not given", an
    # output folder below a regular file
    "study file of random bytes": (["run", "s.yaml", "--storage", "{db}"], {"s.yaml": bytes(range(128, 256))},
                                   "s.yaml: (file): not a text file (not valid UTF-8)"),
    "run: negative --n-trials": (["run", "s.yaml", "--storage", "{db}", "--n-trials", "-3"], {"s.yaml": study()},
                                 "Invalid value for '--n-trials' / '-n': Input should be greater than or equal to 1"),
    "run: negative --timeout": (["run", "s.yaml", "--storage", "{db}", "--timeout", "-5"], {"s.yaml": study()},
                                "Invalid value for '--timeout': Input should be greater than or equal to 0.001"),
    "count: --resolution 0": (["count", "resnet18", "--resolution", "0"], {},
                              "Invalid value for '--resolution' / '-r': Input should be greater than or equal to 8"),
    "run: --out below a regular file": (["run", "s.yaml", "--out", "f/run"], {"s.yaml": study(), "f": ""},
                                        "Invalid value for '--out' / '-o': f is not a folder, so f/run cannot be made"),
    "export: --out below a regular file": (["export", "study.db", "--trial", "0", "--out", "f/x"], {"f": ""},
                                           "f is not a folder, so f/x cannot be made"),
    "export: --out a folder that is not an export": (["export", "study.db", "--trial", "0", "--out", "d"],
                                                     {"d/notes.txt": "mine"}, "d: exists and is not an export folder"),
    "linearize: --out a folder that is not an export": (["linearize", "m", "-o", "d", "-m", "snl", "-b", "1"],
                                                        {"m/arch.json": "{", "d/notes.txt": "mine"},
                                                        "d: exists and is not an export folder"),
    "count: spec JSON is a list": (["count", "s.json"], {"s.json": "[1, 2]"}, "s.json:"),
    "linearize: truncated arch.json": (["linearize", "m", "-o", "o", "-m", "snl", "-b", "1"],
                                          {"m/arch.json": "{", "m/model.safetensors": ""}, "m/arch.json"),
    "usage: budget not a number": (["rule", "--budget", "abc"], {}, "pisearch rule: Invalid value for '--budget'"),
    "usage: missing argument": (["count"], {}, "pisearch count: Missing argument 'NET_OR_SPEC_JSON'"),
    "usage: unknown command": (["frob"], {}, "pisearch: No such command 'frob'"),
}
ALSO_AS_SCRIPT = ["broken YAML", "study name clash"]


def dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        return list(con.iterdump())


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Path:
    """A SQLite storage with study "t" (GOOD) holding one finished trial, and a study not made by pisearch."""
    folder = tmp_path_factory.mktemp("storage")
    (folder / "s.yaml").write_text(study())
    config, space = load_study_config(folder / "s.yaml")
    url = f"sqlite:///{folder / 'study.db'}"
    prep = prepare_study(config, space, storage=url, out_dir=folder)
    prep.study.add_trial(optuna.create_trial(values=[0.5, 1000.0], user_attrs={"accuracy": 0.5}))
    optuna.create_study(study_name="plain", storage=url)
    return folder / "study.db"


def case_folder(tmp_path: Path, storage: Path, name: str) -> tuple[Path, list[str]]:
    args, files, _ = CASES[name]
    shutil.copy(storage, tmp_path / "study.db")
    db = f"sqlite:///{tmp_path / 'study.db'}"
    for file, content in files.items():
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (tmp_path / file).write_bytes(content)
        else:
            (tmp_path / file).write_text(content.replace("{db}", db))
    return tmp_path, [a.replace("{db}", db) for a in args]


def run_forked(folder: Path, args: list[str]) -> tuple[int, str]:
    """``pisearch ARGS`` run by ``pisearch.cli.main`` in a forked child in ``folder``: (exit code, stderr)."""
    err_path = folder / "stderr.txt"
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            torch.set_num_threads(1)  # the parent's OpenMP thread pool does not survive fork()
            os.chdir(folder)
            fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            sys.stderr, sys.stdout = open(2, "w", closefd=False), open(1, "w", closefd=False)
            sys.argv = ["pisearch", *args]
            pisearch.cli.main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:  # what the interpreter would do with an uncaught exception
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err_path.read_text()


def check(code: int, stderr: str, name: str) -> None:
    expected = CASES[name][2]
    lines = stderr.splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr and "s3cret" not in stderr
    assert expected in lines[0], lines[0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_storage_unchanged(tmp_path, storage, name):
    folder, args = case_folder(tmp_path, storage, name)
    code, stderr = run_forked(folder, args)
    check(code, stderr, name)
    assert dump(folder / "study.db") == dump(storage)
    assert not (folder / "runs").exists() and not (folder / "pwned").exists()


def test_script_behaves_like_forked_main(tmp_path, storage):
    script = shutil.which("pisearch", path=str(Path(sys.executable).parent)) or shutil.which("pisearch")
    if script is None:
        pytest.skip("the pisearch script is not installed (pip install -e .)")
    runs = []
    for name in ALSO_AS_SCRIPT:
        sub = tmp_path / re.sub(r"\W+", "_", name)
        sub.mkdir()
        folder, args = case_folder(sub, storage, name)
        runs.append((name, folder, subprocess.Popen([script, *args], cwd=folder, stderr=subprocess.PIPE, text=True)))
    for name, folder, proc in runs:
        _, stderr = proc.communicate(timeout=120)
        check(proc.returncode, stderr, name)
        assert dump(folder / "study.db") == dump(storage)


def test_weights_and_yaml_are_never_loaded_unsafely():
    """No pickle for weights (safetensors only), torch.load only with weights_only=True, YAML only safely; a
    module that must read a pickle format (CIFAR batches) does it with a restricted Unpickler."""
    problems = []
    for path in sorted((ROOT / "pisearch").rglob("*.py")):
        text = path.read_text()
        where = path.relative_to(ROOT)
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            if "weights_only=True" not in call:
                problems.append(f"{where}: {call}")
        for call in re.findall(r"yaml\.(?:load|load_all)\([^)]*\)", text):
            if "SafeLoader" not in call:
                problems.append(f"{where}: {call}")
        problems += [f"{where}: {m}" for m in re.findall(r"yaml\.(?:unsafe_load|full_load)\w*\(", text)]
        problems += [f"{where}: {m}" for m in re.findall(r"^\s*(?:import|from) (?:dill|cloudpickle|joblib)\b", text,
                                                        re.M)]
        if re.search(r"^\s*(?:import|from) (?:pickle|_pickle|cPickle)\b", text, re.M):
            unrestricted = re.findall(r"pickle\.(?:load|loads)\(", text)
            if unrestricted or "def find_class" not in text:
                problems.append(f"{where}: imports pickle without a restricted Unpickler (find_class)")
    assert problems == []


@pytest.mark.parametrize("crash", [KeyboardInterrupt, RuntimeError])
def test_a_run_cut_short_before_its_first_trial_leaves_no_folder(tmp_path, monkeypatch, crash):
    """A new run folder appears whole (storage made, baselines queued) or not at all: a crash while it is made
    leaves neither it, nor a temporary sibling, nor the parent folders it made."""
    (tmp_path / "s.yaml").write_text(study())
    config, space = load_study_config(tmp_path / "s.yaml")

    def enqueue_crashes(*_):
        raise crash()

    monkeypatch.setattr(runner_mod, "enqueue_once", enqueue_crashes)
    with pytest.raises(crash):
        prepare_study(config, space, out_dir=tmp_path / "runs" / "deep" / "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]
    monkeypatch.undo()
    prep = prepare_study(config, space, out_dir=tmp_path / "runs" / "t")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["t"]
    assert (tmp_path / "runs" / "t" / "study.db").is_file() and prep.study.get_trials() == []
