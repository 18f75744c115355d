"""N processes writing one study at once: does a storage lose anything? (Issue 18: which storage `--jobs N` uses.)

Each of ``--processes`` workers asks ``--trials`` trials of one study, sets ``--attrs`` user attrs on each and tells
it COMPLETE, as fast as it can (a much harder load than real trials, which take seconds). Prints, per storage kind
(SQLite file through pisearch's Store, Optuna's journal file): errors raised, trials and attrs expected vs stored,
duplicate trial numbers, and trials per second.

    python benchmarks/storage_writers.py [--processes 4] [--trials 100] [--attrs 10]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import optuna

from pisearch.study import Store


def write(url: str, worker: int, trials: int, attrs: int, errors) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = Store.open(url).load("w")
    for _ in range(trials):
        try:
            trial = study.ask()
            for k in range(attrs):
                trial.set_user_attr(f"a{k}", worker)
            study.tell(trial, 0.0)
        except Exception as err:  # noqa: BLE001 — counted, the point of the benchmark
            errors.put(f"{type(err).__name__}: {str(err).splitlines()[0][:80]}")


def run(url: str, args: argparse.Namespace) -> None:
    Store.open(url).create("w", ["minimize"], optuna.samplers.RandomSampler())
    errors = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=write, args=(url, k, args.trials, args.attrs, errors))
             for k in range(args.processes)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    seconds = time.perf_counter() - start
    seen = []
    while not errors.empty():
        seen.append(errors.get())
    trials = Store.read(url).load("w").trials
    numbers = [t.number for t in trials]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    stored_attrs = sum(len(t.user_attrs) for t in trials)
    expected = args.processes * args.trials
    print(f"{url.split(':', 1)[0]:8s} errors {len(seen):3d}  trials {len(trials)}/{expected} "
          f"(complete {len(complete)})  attrs {stored_attrs}/{expected * args.attrs}  "
          f"duplicate numbers {len(numbers) - len(set(numbers))}  {len(trials) / seconds:6.1f} trials/s")
    for text in sorted(set(seen))[:3]:
        print(f"         e.g. {text}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--attrs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for url in (f"sqlite:///{Path(tmp) / 'study.db'}", f"journal:///{Path(tmp) / 'study.log'}"):
            run(url, args)


if __name__ == "__main__":
    main()
