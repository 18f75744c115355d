"""Enqueued trials are popped once: processes asking a SQLite study at once never get the same waiting trial."""

import multiprocessing as mp

import optuna

from pisearch.study import Store

WAITING = 32


def _pop_all(url: str, out) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="pop", storage=Store.open(url).storage)
    got = []
    while True:
        trial = study.ask()
        if "i" not in trial.user_attrs:  # no waiting trial left: a new one was created
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        got.append(trial.user_attrs["i"])
        study.tell(trial, 0.0)
    out.put(got)


def test_waiting_trials_are_popped_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'pop.db'}"
    study = optuna.create_study(study_name="pop", storage=Store.open(url).storage)
    for i in range(WAITING):
        study.enqueue_trial({}, user_attrs={"i": i})
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_pop_all, args=(url, out)) for _ in range(4)]
    for p in procs:
        p.start()
    popped = [i for _ in procs for i in out.get(timeout=120)]
    for p in procs:
        p.join()
    assert sorted(popped) == list(range(WAITING))  # each exactly once
