"""Linearization methods at equal finetune compute on the embedded ``digits`` data.

Trains a small CIFAR-form ResNet (widths 16-32-64, one basic block per stage, 16×16 inputs: 18,432 ReLUs,
every site counted) for a few epochs, then linearizes it with SNL, AutoReP, coordinate descent and the naive
baseline (identity at whole late sites) to 5 / 10 / 25 % of its ReLUs. Every method gets the same search
bound (``--search-epochs``) and the same final KD finetune (``--finetune-epochs``, same learning rate).
Prints validation (143 images) and test (359 images) top-1 per method and budget, the search and finetune
seconds, and each method's margin over naive on test.
Run: ``python benchmarks/linearize.py [--search-epochs 6] [--finetune-epochs 4] [--seeds 0] [--threads 1]``.
"""

import argparse
import statistics
import time

import torch

from pisearch.cost import count
from pisearch.data import load_dataset
from pisearch.linearize import linearize
from pisearch.spec import resnet
from pisearch.train import Fidelity, seeded_build, train_proxy

METHODS = ("naive", "snl", "autorep", "cd")
FRACTIONS = (0.05, 0.10, 0.25)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-epochs", type=int, default=8)
    ap.add_argument("--search-epochs", type=int, default=6)
    ap.add_argument("--finetune-epochs", type=int, default=4)
    ap.add_argument("--seeds", default="0", help="comma-separated linearization seeds (the teacher is fixed)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: on a shared 2-core machine, 2 "
                    "threads under contention ran AutoReP 4× slower)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]

    splits = load_dataset("digits", resolution=16)
    spec = resnet((16, 32, 64), (1, 1, 1), resolution=16, num_classes=10)
    relus = count(spec).relus
    fidelity = Fidelity(epochs=args.train_epochs)
    model = seeded_build(spec, fidelity)
    start = time.perf_counter()
    trained = train_proxy(model, splits.train, splits.val, fidelity)
    print(f"teacher: {spec.summary()}, {relus:,} ReLUs (every site), {args.train_epochs} epochs in "
          f"{time.perf_counter() - start:.0f} s: validation top-1 {trained.accuracy:.3f}")
    print(f"each method: search ≤ {args.search_epochs} epochs, then {args.finetune_epochs} finetune epochs with KD; "
          f"seeds {seeds}\n")

    header = f"{'budget':>14} {'method':>8} {'val':>6} {'test':>6} {'before ft':>9} {'search s':>8} {'ft s':>6}"
    print(header)
    test = {}
    for fraction in FRACTIONS:
        budget = round(fraction * relus)
        for method in METHODS:
            runs = []
            for seed in seeds:
                settings = {"search_epochs": args.search_epochs, "finetune_epochs": args.finetune_epochs, "seed": seed}
                runs.append(linearize(method, model, spec, splits, budget, settings)[2])
            mean = {k: statistics.mean(r[k] for r in runs) for k in ("accuracy", "test_accuracy",
                                                                     "accuracy_before_finetune", "search_seconds",
                                                                     "finetune_seconds")}
            test[fraction, method] = mean["test_accuracy"]
            print(f"{budget:>7,} ({fraction:>4.0%}) {method:>8} {mean['accuracy']:>6.3f} {mean['test_accuracy']:>6.3f} "
                  f"{mean['accuracy_before_finetune']:>9.3f} {mean['search_seconds']:>8.1f} "
                  f"{mean['finetune_seconds']:>6.1f}", flush=True)

    print("\ntest top-1 minus naive's, points:")
    print(f"{'budget':>8} " + " ".join(f"{m:>8}" for m in METHODS[1:]))
    for fraction in FRACTIONS:
        gaps = [100 * (test[fraction, m] - test[fraction, "naive"]) for m in METHODS[1:]]
        print(f"{fraction:>8.0%} " + " ".join(f"{g:>+8.1f}" for g in gaps))


if __name__ == "__main__":
    main()
