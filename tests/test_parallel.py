"""`pisearch run --jobs N`: worker processes on one storage share the trials total exactly, a killed worker is
replaced without losing a trial, and Ctrl-C stops every worker and leaves a study that resumes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from pisearch.errors import UserError
from pisearch.study import Store, load_study_config, run_study
import pisearch.study.launch as launch
from pisearch.study.launch import resolve_jobs, stage_progress
from pisearch.study.slots import FINISHED, count_slots, holds_no_slot
from pisearch.study.store import seeds_name

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from pisearch.cli import main; sys.argv[0] = 'pisearch'; main()"]
TOTAL = 6


# tiny.yaml's rule designs plus ResNet18's shape (64; 2,2,2): its baseline is the slowest trial by far (seconds), so a
# worker killed while it trains is killed mid-trial.
SPACE = {**yaml.safe_load((ROOT / "search_spaces" / "tiny.yaml").read_text()),
         "widths": {"base": [4, 8, 64], "ratios": [[1, 2], [1, 2, 5], [1, 2, 3]]}}


def write_study(folder: Path, **overrides) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "space.yaml").write_text(yaml.safe_dump(SPACE))
    data = {
        "name": "p", "space": str(folder / "space.yaml"),
        "dataset": {"name": "synthetic", "resolution": 16},
        "fidelity": {"epochs": 1, "batch_size": 32, "train_subset": 96, "threads": 1},
        "n_trials": TOTAL, "sampler": {"name": "random"}, "seed": 3, "dashboard": False, "compare": {"seeds": 0},
        "baselines": {"deepreshape": {"budgets": [3000, 6000]}, "nets": ["resnet18"]},
    }
    data.update(overrides)
    (folder / "s.yaml").write_text(yaml.safe_dump(data))
    return folder / "s.yaml"


def stored(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="p", storage=f"sqlite:///{run_dir / 'study.db'}")


def assert_exact_total(study: optuna.Study) -> None:
    """The round holds exactly TOTAL slot-holding finished trials, nothing left running or waiting, each baseline
    trained once, and every interrupted trial re-run to completion."""
    trials = study.trials
    assert count_slots(study, FINISHED) == TOTAL
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    baselines = [t.user_attrs["label"] for t in trials if t.user_attrs.get("source") in ("rule", "net")
                 and t.state == TrialState.COMPLETE]
    assert sorted(baselines) == ["deepreshape@3000", "deepreshape@6000", "resnet18"]
    reruns = {t.user_attrs["retry_of"]: t for t in trials if "retry_of" in t.user_attrs}
    # a re-drawn duplicate fails on purpose (untrained, its slot drawn again): it was not interrupted
    for failed in (t for t in trials if t.state == TrialState.FAIL and not holds_no_slot(t)):
        last = reruns[failed.number]
        while last.state == TrialState.FAIL and last.number in reruns:  # a re-run interrupted in its turn
            last = reruns[last.number]
        assert last.state == TrialState.COMPLETE, last.user_attrs.get("reason")


def worker_pids(parent: int) -> list[int]:
    """PIDs of the spawned worker processes of ``parent`` (not multiprocessing's resource tracker), oldest first."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return sorted(int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes())


def wait_for(condition, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def training_resnet18(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    """The running ResNet18 baseline trial (the slowest of the study, seconds: a kill lands mid-trial), if any."""
    if not (run_dir / "study.db").exists():
        return []
    try:
        trials = Store.read(str(run_dir)).load("p").trials  # read-only: never races the run creating the tables
    except (UserError, KeyError):  # the storage or the study is not created yet
        return []
    return [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("label") == "resnet18"
            and "worker" in t.user_attrs]


def test_two_jobs_share_the_total_exactly(tmp_path):
    config, space = load_study_config(write_study(tmp_path))
    result = run_study(config, space, out_dir=tmp_path / "run", progress=False, jobs=2)
    study = stored(tmp_path / "run")
    assert_exact_total(study)
    assert {t.user_attrs["worker"] for t in study.trials if "worker" in t.user_attrs} == {0, 1}
    assert len({t.number for t in study.trials}) == len(study.trials)
    csv = pd.read_csv(tmp_path / "run" / "trials.csv")  # written by the supervisor alone, after the last trial
    assert sorted(csv["number"]) == sorted(t.number for t in study.trials) and len(result.trials) == len(csv)


def test_a_killed_worker_is_replaced_and_the_total_stays_exact(tmp_path):
    path = write_study(tmp_path)
    run = subprocess.Popen(CLI + ["run", str(path), "--jobs", "2", "--no-progress", "-o", str(tmp_path / "run")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: training_resnet18(tmp_path / "run"))
    (victim,) = training_resnet18(tmp_path / "run")
    worker = victim.user_attrs["worker"]
    os.kill(worker_pids(run.pid)[worker], signal.SIGKILL)  # workers 0 and 1 were started in that order; mid-trial
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert f"worker {worker} stopped (exit code -9); 1 running trial(s) re-queued; worker 2 started" in err
    study = stored(tmp_path / "run")
    assert study.trials[victim.number].state == TrialState.FAIL
    assert_exact_total(study)


def test_ctrl_c_stops_every_worker_and_the_study_resumes(tmp_path):
    path = write_study(tmp_path)
    command = CLI + ["run", str(path), "--jobs", "2", "--no-progress", "-o", str(tmp_path / "run")]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)  # its own process group, as a terminal's foreground job
    wait_for(lambda: training_resnet18(tmp_path / "run"))
    workers = worker_pids(run.pid)
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C sends: every process of the group
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130 and "the same command resumes the study" in err
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    study = stored(tmp_path / "run")
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    again = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert_exact_total(stored(tmp_path / "run"))


@pytest.mark.parametrize("cores", [1, 2, 16])
def test_jobs_values(tmp_path, monkeypatch, cores):
    monkeypatch.setattr(launch, "physical_cores", lambda: cores)                  # one core or many, on any machine
    config, space = load_study_config(write_study(tmp_path, jobs="auto"))
    assert config.jobs == "auto" and resolve_jobs("auto", config) == cores        # 1 thread per proxy (TINY_STUDY)
    two_threads = config.model_copy(update={"fidelities": config.fidelities.__class__(
        [], [config.levels[0].model_copy(update={"threads": 2})])})
    assert resolve_jobs("auto", two_threads) == max(1, cores // 2)
    assert resolve_jobs("auto", config.model_copy(update={"device": "cuda"})) == launch.GPU_JOBS
    assert resolve_jobs(3, config) == 3
    for bad in (0, "all", 1.5):
        with pytest.raises(UserError, match="jobs"):
            load_study_config(write_study(tmp_path / str(bad), jobs=bad))
    with pytest.raises(UserError, match="--jobs: worker processes need a storage they can share"):
        run_study(config, space, storage="sqlite:///:memory:", out_dir=tmp_path / "mem", progress=False, jobs=2)


def test_stage_progress_follows_the_stages_after_the_round(tmp_path):
    """The supervisor of several workers rewrites the reports and moves its bar while a stage after the round runs:
    a seed run that finishes changes the signature (so verdict_runs.csv and compare.csv are rewritten), and the bar
    counts that stage's trials under its label."""
    store = Store.open(f"sqlite:///{tmp_path / 'study.db'}")
    study = store.create("p", ["maximize", "minimize"], optuna.samplers.RandomSampler())
    for _ in range(2):
        study.tell(study.ask(), [0.5, 100.0])
    signature, done, total, stage = stage_progress(store, study, 3)
    assert (done, total, stage) == (2, 3, None)  # the round is open: its slots
    study.tell(study.ask(), [0.6, 90.0])
    assert stage_progress(store, study, 3)[0] != signature
    seeds = store.create(seeds_name("p"), ["maximize", "minimize"], optuna.samplers.RandomSampler())
    for _ in range(3):
        seeds.enqueue_trial({})
    signature, done, total, stage = stage_progress(store, study, 3)
    assert (done, total, stage) == (0, 3, "verdict runs")
    running = seeds.ask()
    assert stage_progress(store, study, 3)[:3] == (signature, 0, 3)  # a trial starting changes nothing
    seeds.tell(running, [0.7, 80.0])
    after = stage_progress(store, study, 3)
    assert after[0] != signature and after[1:] == (1, 3, "verdict runs")
