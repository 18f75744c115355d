"""Two pisearch commands on one run folder or storage at once (README, "Two commands at once"): each pair cooperates
or one of them refuses with one line and exit 2; never a traceback, a trial lost or run twice, a trial left RUNNING
or a half-written file.

Both commands of a pair run ``pisearch.cli.main`` in forked children (modules imported once, before forking, as in
tests/test_bad_inputs.py, so a pair takes seconds) that block on one pipe until the test writes to it: they are
released together, a barrier, not a sleep."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from optuna.samplers import RandomSampler
from optuna.trial import TrialState

import pisearch.cli
import pisearch.cli.export
from pisearch.study import Store, load_study_config, run_study
from pisearch.study.slots import FINISHED, count_slots

from tests.test_cli_fuzz import invoke
from tests.test_study import TINY_STUDY

FIRST = 2   # trials of the run every pair starts from
TOTAL = 4   # the total each run of a pair asks for
EXPORT = ["arch.json", "model.safetensors", "model.onnx", "MODEL_CARD.md", "metrics.json"]


@dataclass
class Ended:
    """How one command of a pair ended."""

    code: int
    out: str
    err: str

    def refused(self) -> bool:
        """Exit 2 with one line on stderr, an ``error:``."""
        lines = self.err.splitlines()
        return self.code == 2 and len(lines) == 1 and lines[0].startswith("error: ")


def _child(gate: int, folder: Path, index: int, args: list[str]) -> None:
    """A forked child: wait at the gate, then run ``pisearch ARGS`` in ``folder``; never returns into pytest."""
    code = 1
    try:
        torch.set_num_threads(1)  # the parent's OpenMP thread pool does not survive fork()
        os.chdir(folder)
        for fd, name in ((1, f"out{index}.txt"), (2, f"err{index}.txt")):
            os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
        os.read(gate, 1)
        sys.argv = ["pisearch", *args]
        pisearch.cli.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # what the interpreter does with an uncaught exception
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def together(folder: Path, *commands: list[str]) -> list[Ended]:
    """Run ``commands`` (pisearch arguments) at once in ``folder``: every child forked first, then all released by
    one write to the pipe they wait on."""
    gate_r, gate_w = os.pipe()
    pids = []
    for index, args in enumerate(commands):
        pid = os.fork()
        if pid == 0:
            _child(gate_r, folder, index, args)
        pids.append(pid)
    os.write(gate_w, b"x" * len(commands))
    os.close(gate_r)
    os.close(gate_w)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    return [Ended(code, (folder / f"out{i}.txt").read_text(), (folder / f"err{i}.txt").read_text())
            for i, code in enumerate(codes)]


def write_study(folder: Path, **overrides) -> Path:
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump({**TINY_STUDY, "n_trials": FIRST, "seed": 3, "dashboard": False, **overrides}))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A folder with the study file, its run (``run/``: FIRST complete trials) and the export of trial 0
    (``exp/``)."""
    root = tmp_path_factory.mktemp("base")
    config, space = load_study_config(write_study(root))
    run_study(config, space, out_dir=root / "run", progress=False)
    (exported,) = together(root, ["export", "run", "--trial", "0", "-o", "exp"])
    assert exported.code == 0, exported.err
    return root


@pytest.fixture
def case(base, tmp_path) -> Path:
    shutil.copytree(base, tmp_path, dirs_exist_ok=True)
    return tmp_path


def assert_clean(*ended: Ended) -> None:
    """Each command exited 0 or refused in one line; nothing printed a traceback."""
    for e in ended:
        assert "Traceback" not in e.err, e.err
        assert e.code == 0 or e.refused(), e.err


def assert_whole(folder: Path) -> None:
    """Every CSV and JSON file in ``folder`` parses, and no temporary file or folder of a writer is left."""
    for path in folder.glob("*.csv"):
        pd.read_csv(path)
    for path in folder.glob("*.json"):
        json.loads(path.read_text())
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def assert_run_sound(run_dir: Path, total: int = TOTAL) -> None:
    """The study holds exactly ``total`` finished trials, none RUNNING or WAITING, each design trained once, and
    its reports are whole and list only stored trials."""
    study = Store.read(str(run_dir)).load("t")
    trials = study.get_trials(deepcopy=False)
    assert count_slots(study, FINISHED) == total
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    designs = [t.user_attrs["spec_hash"] for t in trials if t.state == TrialState.COMPLETE]
    assert len(designs) == len(set(designs))
    assert_whole(run_dir)
    assert set(pd.read_csv(run_dir / "trials.csv")["number"]) <= {t.number for t in trials}


def assert_export(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(EXPORT)
    assert_whole(folder)


RUN = ["run", "s.yaml", "-o", "run", "-n", str(TOTAL), "--no-progress"]


@contextmanager
def held_elsewhere(url: str) -> Iterator[None]:
    """A forked child holds the storage at ``url`` open, as a running command does, for the block."""
    held_r, held_w = os.pipe()
    gate_r, gate_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # holds the storage open until the parent writes to the gate
        try:
            other = Store.open(url)
            os.write(held_w, b"x")
            os.read(gate_r, 1)
            other.close()
        finally:
            os._exit(0)
    os.read(held_r, 1)
    try:
        yield
    finally:
        os.write(gate_w, b"x")
        os.waitpid(pid, 0)


def test_running_trials_are_taken_for_dead_only_by_a_process_alone(tmp_path):
    """A RUNNING trial is re-queued as a dead run's only while no other process has the storage open: while a
    forked child holds it, the parent re-queues nothing; once the child has ended, the trial is re-queued."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    made = Store.open(url)
    made.create("t", ["maximize"], RandomSampler()).ask()  # left RUNNING
    made.close()  # the child opens the storage on its own
    with held_elsewhere(url):
        store = Store.open(url)
        study = store.load("t")
        assert store.live.others and store.requeue_dead(study, ()) == 0
    assert store.requeue_dead(study, ()) == 1
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]


def test_create_and_worker_zero_on_a_running_study_get_their_own_advice(case):
    """While a run holds the study, ``pisearch create`` has nothing to create and ``pisearch worker --worker-id 0``
    takes the starting command's id: each says so in one line (exit 2), not the advice meant for ``run``."""
    url = f"sqlite:///{case / 'run' / 'study.db'}"
    with held_elsewhere(url):
        created = invoke(case, ["create", "s.yaml", "-o", "run"])
        worker = invoke(case, ["worker", "--storage", url, "--study", "t", "--worker-id", "0", "--no-progress"])
    assert created[0] == 2 and "nothing to create" in created[1] and "pisearch worker --storage" in created[1]
    assert worker[0] == 2 and "--worker-id 0 is the id of the command that starts" in worker[1]
    for code, err in (created, worker):
        assert len(err.strip().splitlines()) == 1 and "run this command again" not in err, err


def test_run_and_run_making_one_new_folder(case):
    """The issue's two terminals: a new study and run folder. The run that loses the race to make the folder
    refuses in one line (run again to join, or --jobs); one that finds the folder made joins as a worker."""
    new = RUN[:3] + ["new"] + RUN[4:]
    a, b = together(case, new, new)
    assert_clean(a, b)
    assert sorted([a.code, b.code])[0] == 0
    for e in (a, b):
        if e.code == 2:
            assert "another pisearch command is running study 't' there" in e.err and "--jobs" in e.err
    assert_run_sound(case / "new")


def test_run_and_run_on_one_folder(case):
    """Two runs resuming one folder: the second joins the first as one more worker; the total stays exact."""
    a, b = together(case, RUN, RUN)
    assert (a.code, b.code) == (0, 0), a.err + b.err
    assert_clean(a, b)
    assert sum("joins it as worker" in e.err for e in (a, b)) == 1
    assert_run_sound(case / "run")


def test_run_and_worker(case):
    worker = ["worker", "--storage", "sqlite:///run/study.db", "--study", "t", "-n", str(TOTAL), "-o", "run",
              "--no-progress"]
    a, b = together(case, RUN, worker)
    assert (a.code, b.code) == (0, 0), a.err + b.err
    assert_clean(a, b)
    assert_run_sound(case / "run")


def test_run_and_export(case):
    a, b = together(case, RUN, ["export", "run", "--trial", "0", "-o", "best"])
    assert (a.code, b.code) == (0, 0), a.err + b.err
    assert_clean(a, b)
    assert_run_sound(case / "run")
    assert_export(case / "best")


def test_run_and_dashboard(case):
    """Both write run/dashboard.html (the run at its end): each whole, through its own temporary file."""
    write_study(case, dashboard=True)
    a, b = together(case, RUN, ["dashboard", "run"])
    assert (a.code, b.code) == (0, 0), a.err + b.err
    assert_clean(a, b)
    assert_run_sound(case / "run")
    assert (case / "run" / "dashboard.html").read_text().rstrip().endswith("</html>")


def test_run_and_linearize_of_its_export(case):
    linearize = ["linearize", "exp", "-o", "lin", "-m", "naive", "-b", "50%", "--epochs", "0", "--search-epochs", "0"]
    a, b = together(case, RUN, linearize)
    assert (a.code, b.code) == (0, 0), a.err + b.err
    assert_clean(a, b)
    assert_run_sound(case / "run")
    assert_export(case / "lin")


def test_export_and_export_to_one_folder(case, monkeypatch):
    """Two exports to one -o take turns writing it (their writes, timed here, do not overlap): both succeed, the
    folder holds one whole export, nothing else is left."""
    write = pisearch.cli.export.write_export

    def timed(*args, **kwargs):
        start = time.monotonic()
        path = write(*args, **kwargs)
        with open(case / "writes.txt", "a") as log:
            log.write(f"{start} {time.monotonic()}\n")
        return path

    monkeypatch.setattr(pisearch.cli.export, "write_export", timed)  # the forked children inherit it
    export = ["export", "run", "--trial", "1", "-o", "best"]
    a, b = together(case, export, export)
    assert (a.code, b.code) == (0, 0), a.err + b.err
    assert_clean(a, b)
    (_, first_end), (second_start, _) = sorted(tuple(map(float, line.split())) for line in
                                               (case / "writes.txt").read_text().splitlines())
    assert first_end <= second_start
    assert_export(case / "best")
    assert json.loads((case / "best" / "metrics.json").read_text())["trial"] == 1
    assert_whole(case)
