"""Distributed studies: storages from URLs, workers that join from the storage alone, heartbeats and retries.

The PostgreSQL tests need a server: set PISEARCH_TEST_PG to a URL of an empty database the tests may write
(``.ci/run`` starts one, e.g. postgresql+psycopg://pisearch:pisearch@localhost/pisearch_test)."""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from importlib.util import find_spec
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

import pisearch.study.runner as runner_mod
from pisearch.errors import UserError
from pisearch.study import load_study_config, trials_frame
from pisearch.study.promotion import band_parents
from pisearch.study import load_stored_study, prepare_study, run_study
from pisearch.study.store import Store

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("PISEARCH_TEST_PG")
needs_pg = pytest.mark.skipif(not PG, reason="PISEARCH_TEST_PG is unset: set it to a PostgreSQL URL to run the "
                              "multi-worker tests (see .ci/run)")
CLI = [sys.executable, "-c", "import sys; from pisearch.cli import main; sys.argv[0] = 'pisearch'; main()"]
# The same CLI, but training hangs after announcing itself (touching $PISEARCH_TEST_MARK): a worker mid-trial.
HANGS_IN_TRAINING = [sys.executable, "-c", """
import os, pathlib, sys, time
import pisearch.study.objective as objective
def train_proxy(*args, **kwargs):
    pathlib.Path(os.environ["PISEARCH_TEST_MARK"]).touch()
    time.sleep(600)
objective.train_proxy = train_proxy
from pisearch.cli import main
sys.argv[0] = "pisearch"
main()
"""]
INTERVAL_S, GRACE_S = 1, 2
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def write_study(folder: Path, name: str, **overrides) -> Path:
    data = {
        "name": name,
        "space": str(ROOT / "search_spaces" / "tiny.yaml"),
        "dataset": {"name": "synthetic", "resolution": 16},
        "fidelity": {"epochs": 1, "batch_size": 32, "train_subset": 96, "threads": 1},
        "n_trials": 8,
        "sampler": {"name": "random"},
        "seed": 5,
        "storage": {"heartbeat_interval_s": INTERVAL_S, "grace_period_s": GRACE_S},
    }
    data.update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def create(path: Path, url: str, out: Path):
    config, space = load_study_config(path)
    return prepare_study(config, space, storage=url, out_dir=out)


def worker_args(url: str, name: str, *extra: str) -> list[str]:
    return ["worker", "--storage", url, "--study", name, "--no-progress", *extra]


def assert_csv_matches_storage(csv: Path, study: optuna.Study) -> None:
    """trials.csv holds exactly the storage's trials with the same states, specs and accuracies."""
    written = pd.read_csv(csv)
    stored = trials_frame(study)
    assert written["number"].tolist() == stored["number"].tolist()
    for col in ("state", "spec_hash"):
        assert written[col].tolist() == stored[col].tolist()
    pd.testing.assert_series_equal(written["accuracy"].astype(float), stored["accuracy"].astype(float),
                                   check_names=False)


@pytest.fixture
def pg_study():
    """A fresh study name on the PostgreSQL server, deleted afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    try:
        optuna.delete_study(study_name=name, storage=PG)
    except KeyError:
        pass


def test_worker_runs_a_study_from_its_storage_alone(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    path = write_study(tmp_path, "t", n_trials=2)
    prep = create(path, url, tmp_path / "creator")
    assert prep.study.get_trials() == []  # created, nothing run
    config, space, total = load_stored_study(url, "t")  # no study file, no space file: the storage suffices
    assert config == prep.config and space.to_dict() == prep.space.to_dict() and total == 2
    result = run_study(config, space, storage=url, out_dir=tmp_path / "worker", progress=False, worker_id=7)
    study = optuna.load_study(study_name="t", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert {t.user_attrs["worker"] for t in study.trials} == {7}
    assert_csv_matches_storage(tmp_path / "worker" / "trials.csv", study)
    assert result.trials["accuracy"].between(0, 1).all()


def test_trial_beyond_the_total_gives_way(tmp_path, monkeypatch):
    config, space = load_study_config(write_study(tmp_path, "t", n_trials=1))
    url = f"journal:///{tmp_path / 'study.log'}"  # no re-queueing of RUNNING trials: they are other workers'
    run_study(config, space, storage=url, out_dir=tmp_path / "run", progress=False)
    Store.open(url).load("t").ask()  # another worker took the last slot...
    real, seen = runner_mod.count_slots, [1]  # ...just after this worker counted the taken slots
    monkeypatch.setattr(runner_mod, "count_slots",
                        lambda study, states: seen.pop() if states == runner_mod.TAKEN and seen else real(study, states))
    result = run_study(config, space, n_trials=2, storage=url, out_dir=tmp_path / "run", progress=False)
    assert result.trials["state"].tolist() == ["COMPLETE", "RUNNING", "PRUNED"]
    late = result.study.trials[2]
    assert late.user_attrs["reason"].startswith("surplus") and "accuracy" not in late.user_attrs


def test_journal_file_storage(tmp_path):
    path = write_study(tmp_path, "j", n_trials=1)
    config, space = load_study_config(path)
    url = f"journal:///{tmp_path / 'study.log'}"
    run_study(config, space, storage=url, out_dir=tmp_path / "run", progress=False)
    for same in (url, str(tmp_path / "study.log")):  # a plain .log path is the same journal
        study = Store.read(same).load("j")
        assert [t.state for t in study.trials] == [TrialState.COMPLETE]


@pytest.mark.parametrize("url, message", [
    ("redis://localhost/0", "unknown kind of storage URL"),
    ("postgresql+psycopg://me:s3cret@127.0.0.1:1/db", "cannot open it"),
    ("sqlite:///{tmp}/no/such/folder/x.db", "cannot open it"),
    ("journal:///{tmp}/no/such/folder/x.log", "cannot open it"),
])
def test_unopenable_storage_is_one_line(tmp_path, url, message):
    if url.startswith("postgresql") and find_spec("psycopg") is None:
        message = "driver is not installed"
    with pytest.raises(UserError) as err:
        Store.open(url.format(tmp=tmp_path))
    text = str(err.value)
    assert message in text and "\n" not in text and "s3cret" not in text


def test_storage_block_or_url(tmp_path):
    config, _ = load_study_config(write_study(tmp_path, "a", storage="sqlite:///x.db"))
    assert config.storage.url == "sqlite:///x.db" and config.storage.grace_period_s == 120
    config, _ = load_study_config(write_study(tmp_path, "b"))
    block = config.storage
    assert (block.url, block.heartbeat_interval_s, block.grace_period_s) == (None, INTERVAL_S, GRACE_S)
    with pytest.raises(UserError, match="storage: grace_period_s 2 must be longer than heartbeat_interval_s 2"):
        load_study_config(write_study(tmp_path, "c", storage={"heartbeat_interval_s": 2, "grace_period_s": 2}))


@needs_pg
def test_two_workers_share_one_postgres_study(tmp_path, pg_study):
    create(write_study(tmp_path, pg_study), PG, tmp_path / "creator")
    commands = [CLI + worker_args(PG, pg_study, "--worker-id", str(k), "--out", str(tmp_path / f"w{k}"))
                for k in (1, 2)]
    workers = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for command in commands]
    for w in workers:
        assert w.wait(timeout=120) == 0, w.stderr.read()
    study = optuna.load_study(study_name=pg_study, storage=PG)  # the URL alone: what dashboards/exports use
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(len(numbers)))  # unique, no gaps
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 8
    others = [t for t in study.trials if t.state != TrialState.COMPLETE]
    assert all(t.state == TrialState.PRUNED and t.user_attrs["reason"].startswith("surplus") for t in others)
    assert {t.user_attrs["worker"] for t in complete} == {1, 2}  # both worked, with their own sampler seeds
    for k in (1, 2):
        assert_csv_matches_storage(tmp_path / f"w{k}" / "trials.csv", study)


@needs_pg
def test_two_workers_promote_each_parent_once(tmp_path, pg_study):
    """Both workers finish the round and promote it at once: every band parent is trained at level 1 exactly
    once, by whichever worker popped it; a parent both enqueued trains only in its lower-numbered trial."""
    path = write_study(tmp_path, pg_study, fidelities=[{"epochs": 2}], promotion={"epsilon": 0.05})
    create(path, PG, tmp_path / "creator")
    # one shared run folder (its artifacts/ holds the weights promotions warm-start from)
    commands = [CLI + worker_args(PG, pg_study, "--worker-id", str(k), "--out", str(tmp_path / "run"))
                for k in (1, 2)]
    workers = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for command in commands]
    try:
        for w in workers:
            assert w.wait(timeout=180) == 0, w.stderr.read()
        level = optuna.load_study(study_name=f"{pg_study}@L1", storage=PG)
        complete = [t for t in level.trials if t.state == TrialState.COMPLETE]
        trained = [t.user_attrs["parent"] for t in complete]
        assert len(trained) == len(set(trained)) > 0
        assert all(t.user_attrs["warm_start_epochs"] == 1 for t in complete)  # every one found its weights
        assert sorted(trained) == band_parents(Store.read(PG).level_frame(pg_study, 0), ["accuracy", "relus"], 0.05)
        assert all(t.state == TrialState.PRUNED for t in level.trials if t.state != TrialState.COMPLETE)
    finally:
        try:
            optuna.delete_study(study_name=f"{pg_study}@L1", storage=PG)
        except KeyError:
            pass


@needs_pg
def test_killed_worker_trial_is_rerun_after_grace_period(tmp_path, pg_study):
    config, space = load_study_config(write_study(tmp_path, pg_study))
    run_study(config, space, n_trials=1, storage=PG, out_dir=tmp_path / "creator", progress=False)  # one completed
    mark = tmp_path / "hanging"
    args = worker_args(PG, pg_study, "--n-trials", "4", "--out", str(tmp_path / "run"))
    doomed = subprocess.Popen(HANGS_IN_TRAINING + args, env={**os.environ, "PISEARCH_TEST_MARK": str(mark)},
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while not mark.exists():
        assert doomed.poll() is None and time.monotonic() < deadline, "the worker never started a trial"
        time.sleep(0.1)
    doomed.send_signal(signal.SIGKILL)
    assert doomed.wait(timeout=30) == -signal.SIGKILL
    killed_at = datetime.now()
    study = optuna.load_study(study_name=pg_study, storage=PG)
    before = {t.number: t for t in study.trials}
    (done,) = [t for t in before.values() if t.state == TrialState.COMPLETE]
    (hung,) = [t for t in before.values() if t.state == TrialState.RUNNING]
    time.sleep(GRACE_S + INTERVAL_S)  # the hung trial's heartbeat is now older than the grace period
    resumed = subprocess.run(CLI + args, stderr=subprocess.PIPE, text=True, timeout=120)  # the same command
    assert resumed.returncode == 0, resumed.stderr
    trials = {t.number: t for t in optuna.load_study(study_name=pg_study, storage=PG).trials}
    assert trials[hung.number].state == TrialState.FAIL
    (retry,) = [t for t in trials.values() if t.user_attrs.get("retry_of") == hung.number]
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs["spec_hash"] == hung.user_attrs["spec_hash"]  # the same candidate, re-run
    assert retry.datetime_start >= killed_at + timedelta(seconds=GRACE_S - INTERVAL_S)
    assert trials[done.number].values == done.values  # no completed trial lost or redone
    assert trials[done.number].datetime_complete == done.datetime_complete
    states = [t.state for t in trials.values()]  # the dead trial's re-run took its slot: 4 complete of 4
    assert states.count(TrialState.COMPLETE) == 4 and states.count(TrialState.FAIL) == 1 and len(states) == 5
    assert_csv_matches_storage(tmp_path / "run" / "trials.csv", optuna.load_study(study_name=pg_study, storage=PG))


SLOW_ENQUEUE = """
import sys, time
import optuna
from pisearch.study import load_study_config, prepare_study
real = optuna.Study.enqueue_trial
def slow(self, *args, **kwargs):  # widen the read-then-write window of enqueueing the baselines
    time.sleep(0.3)
    return real(self, *args, **kwargs)
optuna.Study.enqueue_trial = slow
path, url, start = sys.argv[1:]
config, space = load_study_config(path)
while time.time() < float(start):  # both processes reach the storage at the same moment
    time.sleep(0.005)
prepare_study(config, space, storage=url, out_dir=path + ".out")
"""


@needs_pg
def test_two_runs_at_once_enqueue_the_baselines_once(tmp_path, pg_study):
    """Two `pisearch run` started at once on a new server study: one enqueues the baselines, the other finds them
    (the enqueue step holds a PostgreSQL advisory lock); without it each process enqueued all of them."""
    path = write_study(tmp_path, pg_study, baselines={"deepreshape": {"budgets": [3000, 6000]}})
    start = str(time.time() + 8)
    procs = [subprocess.Popen([sys.executable, "-c", SLOW_ENQUEUE, str(path), PG, start], stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    trials = optuna.load_study(study_name=pg_study, storage=PG).trials
    labels = [t.user_attrs.get("label") for t in trials]
    assert sorted(labels) == ["deepreshape@3000", "deepreshape@6000"], labels


@needs_pg
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_stale_trials_retry_does_not_carry_its_reason(pg_study):
    """RetryStaleOnce re-queues a trial whose worker died with the attrs naming its candidate and retry_of, and
    nothing else: the reason the dead attempt had written is not the retry's, before or after it completes."""
    store = Store.open(PG, keep_attrs=("spec_hash",), heartbeat_interval_s=INTERVAL_S, grace_period_s=GRACE_S)
    study = store.create(pg_study, ["maximize"], optuna.samplers.RandomSampler(seed=0))
    dead = study.ask()
    dead.set_user_attr("spec_hash", "abc")
    dead.set_user_attr("reason", "diverged: loss is nan")  # what the dead attempt had recorded
    store.storage.record_heartbeat(dead._trial_id)
    time.sleep(GRACE_S + INTERVAL_S)
    store.fail_stale(study)
    (waiting,) = study.get_trials(states=(TrialState.WAITING,))
    assert waiting.user_attrs == {"spec_hash": "abc", "retry_of": dead.number}
    retry = study.ask()
    study.tell(retry, 0.5)
    done = study.trials[retry.number]
    assert done.state == TrialState.COMPLETE and "reason" not in done.user_attrs
    assert study.trials[dead.number].state == TrialState.FAIL
