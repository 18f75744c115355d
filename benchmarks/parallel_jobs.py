"""Wall time of the quickstart study with ``--jobs 1`` and ``--jobs N`` on this machine, in one run (issue 18
target on 2 CPU cores: ``--jobs 2`` ≤ 0.6× the wall time of ``--jobs 1``), and the Pareto front of both.

Each mode runs studies/quickstart.yaml (digits, 24 trials, the same total) from scratch into a temporary folder,
with the dashboard off. Prints per mode: wall seconds (process start to reports written, workers' start-up
included), complete trials, the summed training seconds of its trials (the two modes sample different
architectures, so their work differs: the ratio of wall time to training time is the parallel efficiency), and the
accuracy-vs-ReLU front. Run it on an otherwise idle machine.

    python benchmarks/parallel_jobs.py [--jobs 2] [--trials 24] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from pisearch.study import StudyConfig, front_of, load_study_config, run_study

ROOT = Path(__file__).resolve().parents[1]


def run_mode(jobs: int, args: argparse.Namespace) -> tuple[float, pd.DataFrame, pd.DataFrame]:
    """(wall seconds, trials table, Pareto front) of the quickstart with ``jobs`` worker processes."""
    config, space = load_study_config(ROOT / "studies" / "quickstart.yaml")
    config = StudyConfig.model_validate({**config.model_dump(), "dashboard": False, "device": args.device})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        trials = run_study(config, space, n_trials=args.trials, out_dir=Path(tmp) / "run", progress=False,
                           jobs=jobs).trials
        wall = time.perf_counter() - start
    return wall, trials, front_of(trials, config.objectives)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="worker processes of the parallel mode")
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    results = {jobs: run_mode(jobs, args) for jobs in (1, args.jobs)}
    for jobs, (wall, trials, front) in results.items():
        complete = int((trials["state"] == "COMPLETE").sum())
        train = pd.to_numeric(trials["train_seconds"], errors="coerce").sum()
        print(f"--jobs {jobs}: {wall:6.1f} s wall, {complete} complete of {len(trials)} trials, {train:6.1f} s of "
              f"training (training / wall {train / wall:.2f})")
        for _, row in front.iterrows():
            print(f"    front: trial {int(row['number']):3d} {row['source']:6s} accuracy {row['accuracy']:.4f} "
                  f"{int(row['relus']):7,} ReLUs  {row['summary']}")
    one, many = results[1][0], results[args.jobs][0]
    print(f"wall time --jobs {args.jobs} / --jobs 1: {many / one:.2f} (target ≤ 0.6 at 2 jobs on 2 cores)")


if __name__ == "__main__":
    main()
