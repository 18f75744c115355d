"""Replay every sampler against the tabular benchmark of the search-vs-rule space (issue 28): which sampler finds a
better accuracy-vs-ReLU front in fewer trials, over ≥ 10 study seeds, in minutes instead of hours.

Each (sampler, study seed) is a real pisearch study (``run_study``: the study's sampler built by
``pisearch.study.samplers.build_sampler``, its ReLU bins, budget constraints, duplicate re-draws and, for
``cost_ehvi``, its proposals), with two things answered from ``benchmarks/results/space_table_fashion_mnist.csv``
instead of training:

* the design: a sampled spec is replaced by the table design nearest to it in the surrogate's feature space
  (standardised :func:`~pisearch.study.cost_sampler.design_features`: log counts, widths, depths, per-stage ReLUs and
  polynomials), so every trial is a measured design with its own exact cost. Two samples that map to one table
  design are a duplicate, re-drawn as in a real study: every sampler draws the table without replacement.
  ``cost_ehvi``'s pool is the table itself (it proposes table designs, mapped to themselves);
* the accuracy: the table's (training seed 0).

Printed (axes accuracy × log10 ReLUs over the budget window, above the table's lowest accuracy, so every sampler is
measured on one fixed area): per sampler, the hypervolume after 6, 12, 18, 24, 30, 36 trials (median and IQR over
study seeds); the trials each needs (median) to reach random's median 36-trial hypervolume; its 36-trial
hypervolume / random's (median of per-seed ratios, and the shared-range ratio the real benchmark reports, with its
IQR); and per
rule budget the headroom: the table's best accuracy at ≤ the budget against random's median best after 36 trials.

    python benchmarks/sampler_bench.py                          # 5 samplers × 10 seeds × 36 trials, a few minutes
    python benchmarks/sampler_bench.py --samplers random,cost_ehvi --seeds 3 --trials 24   # quicker
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import optuna
import pandas as pd

from search_vs_rule import BUDGETS, WINDOW, space_at
from space_table import OUT
from pisearch.data import load_dataset
from pisearch.report import shared_hypervolume
from pisearch.report.pareto import attainment_area
from pisearch.space import SearchSpace
from pisearch.spec import ArchSpec
from pisearch.study import StudyConfig, run_study
from pisearch.study import objective as objective_module
from pisearch.study import runner as runner_module
from pisearch.study.cost_sampler import design_features
from pisearch.train import TrainResult, machine_line

SAMPLERS = ("random", "tpe", "gp", "nsga2", "cost_ehvi")
CHECKPOINTS = (6, 12, 18, 24, 30, 36)


class Table:
    """The tabular benchmark's seed-0 rows: designs, accuracies and the nearest-design map."""

    def __init__(self, path: Path) -> None:
        rows = pd.read_csv(path)
        self.rows = rows[rows["train_seed"] == 0].drop_duplicates("spec_hash").reset_index(drop=True)
        self.specs = [ArchSpec.from_json(s) for s in self.rows["spec"]]
        self.accuracy = dict(zip(self.rows["spec_hash"], self.rows["accuracy"]))
        self.n_stages = max(len(s.stages) for s in self.specs)
        x = np.array([design_features(s, self.n_stages) for s in self.specs])
        self.shift, self.scale = x.mean(axis=0), np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        self.x = (x - self.shift) / self.scale

    def nearest(self, spec: ArchSpec) -> ArchSpec:
        """The table design closest to ``spec`` (itself when it is in the table)."""
        if spec.hash in self.accuracy:
            return spec
        z = (design_features(spec, self.n_stages) - self.shift) / self.scale
        return self.specs[int(np.argmin(((self.x - z) ** 2).sum(axis=1)))]


def study_config(sampler: str, seed: int, trials: int, pool: int) -> StudyConfig:
    """A plain search of the search-vs-rule space (search_vs_rule.py's budget), no baselines or seeds; ``pool``:
    cost_ehvi's pool size (the table's designs, drawn below)."""
    options = {"pool_size": pool} if sampler == "cost_ehvi" else {}
    return StudyConfig.model_validate({
        "name": f"{sampler}-s{seed}", "space": "quickstart.yaml", "seed": seed, "n_trials": trials,
        "dataset": {"name": "fashion_mnist", "resolution": 16, "val_fraction": 0.05},
        "fidelity": {"epochs": 2, "train_subset": 16384, "warmup_epochs": 0.2, "threads": 1, "precision": "fp32"},
        "sampler": {"name": sampler, "options": options}, "dashboard": False, "compare": {"seeds": 0},
        "budget": {"min_relus": WINDOW[0], "max_relus": WINDOW[1], "bins": 5, "max_macs": 12_000_000},
    })


def replay(table: Table, space: SearchSpace, sampler: str, seed: int, trials: int, splits) -> pd.DataFrame:
    """(number, relus, accuracy) of the COMPLETE trials of one replayed study, in trial order."""
    spec_for = objective_module.TrialRunner.spec_for

    def mapped(self, trial):
        return table.nearest(spec_for(self, trial))

    def answer(model, train, val, fidelity, device="cpu", progress=None):
        return TrainResult(accuracy=float(answer.accuracy), accuracy_per_epoch=[], train_seconds=0.0,
                           images_per_second=0.0)

    def record(self, trial):  # the mapped design's table accuracy is what the stand-in trainer returns
        spec = mapped(self, trial)
        answer.accuracy = table.accuracy[spec.hash]
        return spec

    order = iter(np.random.default_rng(seed).permutation(len(table.specs)).tolist())

    def draw(self, rng, *, num_classes, in_channels=3, tries=0):  # cost_ehvi's pool: the table's designs
        spec = table.specs[next(order)]
        return self.params_of(spec), spec

    with tempfile.TemporaryDirectory() as out, \
            mock.patch.object(objective_module.TrialRunner, "spec_for", record), \
            mock.patch.object(objective_module, "train_proxy", answer), \
            mock.patch.object(SearchSpace, "draw", draw), \
            mock.patch.object(runner_module, "load_dataset", lambda *a, **k: splits):
        result = run_study(study_config(sampler, seed, trials, len(table.specs)), space, storage="sqlite:///:memory:",
                           out_dir=Path(out), progress=False)
    t = result.trials
    t = t[(t["state"] == "COMPLETE") & t["accuracy"].notna()].sort_values("number")
    return t[["number", "relus", "accuracy"]].reset_index(drop=True)


def area(points: pd.DataFrame, floor: float) -> float:
    """Hypervolume of ``points`` over the budget window above ``floor`` (accuracy × decades of ReLUs)."""
    return attainment_area(points["relus"].to_numpy(float), points["accuracy"].to_numpy(float), WINDOW[0], WINDOW[1],
                           floor)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=36)
    ap.add_argument("--table", default=str(OUT))
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table = Table(Path(args.table))
    floor = float(table.rows["accuracy"].min())
    print(f"machine: {machine_line()}")
    print(f"table: {len(table.specs)} designs ({args.table}), accuracy {floor:.4f} … {table.rows['accuracy'].max():.4f}"
          f"; hypervolume over ReLUs {WINDOW[0]:,}–{WINDOW[1]:,} above {floor:.4f}")
    space = space_at(16)
    splits = load_dataset("digits", resolution=16)  # only its shapes are read: 10 classes, 3 channels
    runs: dict[tuple[str, int], pd.DataFrame] = {}
    for name in args.samplers.split(","):
        start = time.perf_counter()
        for seed in range(args.seeds):
            runs[(name, seed)] = replay(table, space, name, seed, args.trials, splits)
        print(f"[{name}] {args.seeds} studies in {time.perf_counter() - start:.0f} s", flush=True)
    report(runs, args, table, floor)


def report(runs: dict, args: argparse.Namespace, table: Table, floor: float) -> None:
    names, seeds = args.samplers.split(","), range(args.seeds)
    curves = {k: [area(v.iloc[:n], floor) for n in range(1, args.trials + 1)] for k, v in runs.items()}
    target = float(np.median([curves[("random", s)][-1] for s in seeds])) if "random" in names else math.nan
    print(f"\nhypervolume after N trials, median [IQR] over {args.seeds} study seeds:")
    print("sampler    " + "".join(f"{n:>23}" for n in CHECKPOINTS if n <= args.trials)
          + f"   trials to random@{args.trials}   ×random@{args.trials}   shared ×random")
    for name in names:
        cells = []
        for n in CHECKPOINTS:
            if n <= args.trials:
                v = [curves[(name, s)][n - 1] for s in seeds]
                q1, med, q3 = np.percentile(v, [25, 50, 75])
                cells.append(f"{med:.4f} [{q1:.3f}–{q3:.3f}]")
        reach = [next((i + 1 for i, v in enumerate(curves[(name, s)]) if v >= target), math.inf) for s in seeds]
        ratio = [curves[(name, s)][-1] / curves[("random", s)][-1] for s in seeds] if "random" in names else []
        shared = [shared_hypervolume(runs[(name, s)], runs[("random", s)])["ratio"] for s in seeds] \
            if "random" in names else []
        spread = "[{:.3f}–{:.3f}]".format(*np.nanpercentile(shared, [25, 75])) if shared else ""
        print(f"{name:<10} " + "".join(f"{c:>23}" for c in cells)
              + f"   {np.median(reach):>19}   {np.median(ratio):>10.3f}   {np.nanmedian(shared):>13.3f} {spread}")
    if "random" not in names:
        return
    print("\nheadroom at each rule budget: the table's best accuracy at ≤ budget vs random's best after "
          f"{args.trials} trials (median over seeds), and each sampler's:")
    for budget in BUDGETS:
        inside = table.rows[table.rows["relus"] <= budget]
        best = inside["accuracy"].max() if len(inside) else math.nan
        line = f"  ≤ {budget:>6,} ReLUs: table {best:.4f}"
        for name in names:
            got = [r[r["relus"] <= budget]["accuracy"].max() for (n, _), r in runs.items() if n == name]
            line += f"  {name} {np.nanmedian(got):.4f}"
        print(line)


if __name__ == "__main__":
    main()
