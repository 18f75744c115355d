"""A tabular benchmark of the search-vs-rule space (issue 28): N random architectures trained at the proxy that
separates the rule's budgets, one CSV row each, so samplers can be replayed against it in minutes.

The space is ``benchmarks/search_vs_rule.py``'s (the quickstart space at ``--resolution``², ReLU window 2K–30K in 5
log-spaced bins, 12M-MAC cap, scaled by the pixel count). Design ``i`` is the ``i``-th draw of an Optuna
``RandomSampler(--seed)`` aimed at bin ``i mod 5``, exactly as a random-sampler study aims its trials; a draw outside
the window or the cap, or equal to an earlier design (spec hash), is drawn again and gets no index. Every ``--every``
designs, one of the first ``--noise`` designs is trained again at training seed 1, so the table holds the proxy's
seed noise too.

Proxy (``search_vs_rule.py --epochs 2 --train-subset 16384``): 2 epochs × 16,384 Fashion-MNIST images, batch 64,
warm-up 0.2 epochs, 1 torch thread per process, **fp32** (portable: every machine resumes the same table in the same
precision; bf16 is emulated and ~5× slower where the CPU lacks it). Each row says which CPU trained it.

Resumable: rows already in ``--out`` are skipped, so the same command (on any machine) continues the table.

    python benchmarks/space_table.py --designs 300 --jobs 2          # ≈ 60 s per design per core
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import optuna
import torch

from search_vs_rule import BUDGETS, MAX_MACS, WINDOW, space_at
from pisearch.cost import count
from pisearch.data import load_dataset
from pisearch.study import StudyConfig
from pisearch.study.objective import cost_metrics
from pisearch.train import Fidelity, cpu_model, seeded_build, train_proxy

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "space_table_fashion_mnist.csv"
COLUMNS = ["design", "train_seed", "spec_hash", "relus", "relus_b", "polys", "macs", "params", "latency_ms",
           "comm_mb", "stage_relus", "target_bin", "accuracy", "accuracy_per_epoch", "train_seconds", "precision",
           "cpu", "spec"]


def cpu_name() -> str:
    """The CPU model and the flags that change results (the table's ``cpu`` column)."""
    model, flags = cpu_model()
    return f"{model} [{' '.join(flags)}]"


def space_and_config(args: argparse.Namespace):
    """(space with the study's budget, study config) of the table: search_vs_rule's random study at ``args``."""
    scale = (args.resolution / 16) ** 2
    config = StudyConfig.model_validate({
        "name": "space-table", "space": "quickstart.yaml", "seed": args.seed,
        "dataset": {"name": "fashion_mnist", "resolution": args.resolution, "val_fraction": 0.05},
        "fidelity": fidelity_doc(args),
        "sampler": {"name": "random"},
        "budget": {"min_relus": round(WINDOW[0] * scale), "max_relus": round(WINDOW[1] * scale), "bins": 5,
                   "max_macs": round(MAX_MACS * scale)},
    })
    return space_at(args.resolution).with_budget(config.budget), config


def fidelity_doc(args: argparse.Namespace) -> dict:
    return {"epochs": args.epochs, "train_subset": args.train_subset, "batch_size": 64, "warmup_epochs": 0.2,
            "threads": 1, "precision": "fp32", "seed": 0}


def designs(space, n: int, seed: int, num_classes: int, in_channels: int) -> list[tuple[int, object]]:
    """The first ``n`` distinct in-budget designs of a random sampler seeded ``seed``: ``(target bin, spec)``."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    bins, (low, high), cap = space.bins(), space.budget, space.max_macs
    out, seen = [], set()
    while len(out) < n:
        target = len(out) % len(bins)
        trial = study.ask()
        spec = space.sample(trial, num_classes=num_classes, in_channels=in_channels, window=bins[target])
        cost = count(spec)
        study.tell(trial, 0.0)
        if low <= cost.relus <= high and cost.macs <= cap and spec.hash not in seen:
            seen.add(spec.hash)
            out.append((target, spec))
    return out


def tasks(n: int, noise: int, every: int) -> list[tuple[int, int]]:
    """(design, train seed) in training order: every design at seed 0, with design k again at seed 1 after design
    ``every * k`` (k < ``noise``)."""
    order = []
    for i in range(n):
        order.append((i, 0))
        if i % every == every - 1 and i // every < noise:
            order.append((i // every, 1))
    return order


_SPLITS = None


def _train(job: tuple[int, int, int, str, dict, dict]) -> dict:
    """Train one (design, seed) in a worker process; returns its CSV row."""
    global _SPLITS
    design, seed, target, spec_json, fidelity, dataset = job
    from pisearch.spec import ArchSpec
    if _SPLITS is None:
        _SPLITS = load_dataset(**dataset)
    torch.set_num_threads(1)
    spec = ArchSpec.from_json(spec_json)
    f = Fidelity.model_validate({**fidelity, "seed": seed})
    result = train_proxy(seeded_build(spec, f), _SPLITS.train, _SPLITS.val, f)
    return {"design": design, "train_seed": seed, "target_bin": target, "accuracy": round(result.accuracy, 5),
            "accuracy_per_epoch": json.dumps([round(a, 5) for a in result.accuracy_per_epoch]),
            "train_seconds": round(result.train_seconds, 2), "precision": f.precision, "cpu": cpu_name()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--designs", type=int, default=300)
    ap.add_argument("--noise", type=int, default=30, help="designs trained again at training seed 1")
    ap.add_argument("--every", type=int, default=10, help="one noise re-training after every N designs")
    ap.add_argument("--seed", type=int, default=0, help="the random sampler's seed (which designs)")
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-subset", type=int, default=16384)
    ap.add_argument("--jobs", type=int, default=2, help="training processes (1 torch thread each)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, config = space_and_config(args)
    dataset = {"name": "fashion_mnist", "resolution": args.resolution, "val_fraction": 0.05}
    specs = designs(space, args.designs, args.seed, num_classes=10, in_channels=3)
    out = Path(args.out)
    done = set()
    if out.exists():
        with out.open() as fh:
            done = {(int(r["design"]), int(r["train_seed"])) for r in csv.DictReader(fh)}
    todo = [(d, s) for d, s in tasks(args.designs, args.noise, args.every) if (d, s) not in done]
    print(f"space table: {len(done)} rows in {out}, {len(todo)} to train with {args.jobs} processes; budgets "
          f"{BUDGETS} (×{(args.resolution / 16) ** 2:g}); {cpu_name()}", flush=True)
    jobs = [(d, s, specs[d][0], specs[d][1].to_json(), fidelity_doc(args), dataset) for d, s in todo]
    new = not out.exists()
    start = time.perf_counter()
    with out.open("a", newline="") as fh, mp.get_context("spawn").Pool(args.jobs) as pool:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        for k, row in enumerate(pool.imap_unordered(_train, jobs), start=1):
            spec = specs[row["design"]][1]
            metrics = cost_metrics(spec, config)
            row.update({key: metrics[key] for key in ("relus", "relus_b", "polys", "macs", "params", "latency_ms",
                                                       "comm_mb")})
            row.update(spec_hash=spec.hash, spec=spec.to_json(),
                       stage_relus=json.dumps(count(spec).stage_relus()))
            writer.writerow(row)
            fh.flush()
            rate = (time.perf_counter() - start) / k
            print(f"[{len(done) + k}/{len(done) + len(todo)}] design {row['design']} seed {row['train_seed']}: "
                  f"{row['accuracy']:.4f} at {int(row['relus']):,} ReLUs, {row['train_seconds']:.0f} s "
                  f"(≈ {rate * (len(todo) - k) / 60:.0f} min left)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
