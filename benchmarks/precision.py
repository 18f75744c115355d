"""fp32 against ``precision: auto`` on the machine it runs on (issue 33): is bf16 faster here, and does it rank
architectures as fp32 does?

Printed, with the CPU model and the flags it saw (``pisearch.train.machine_line``):

* wall seconds per proxy training, fp32 vs auto, for (a) a quickstart trial (the quickstart study's fidelity on
  digits, the rule's 10K-ReLU design of the quickstart space) and (b) a 32² ResNet18-shaped net of widths
  16-32-64-128 on Fashion-MNIST, 1 epoch × 2,048 images; each ``--repeats`` times, the two precisions interleaved
  so that other load on the machine hits both alike; the ratio is of the medians;
* Kendall τ between the two precisions' validation accuracies over ``--archs`` architectures of the
  search-vs-rule space (the first designs of ``benchmarks/space_table.py``) trained at the proxy that separates
  the rule's budgets (2 epochs × 16,384 Fashion-MNIST images at 16², 1 thread), and the largest accuracy gap.

Where the CPU has no bf16 units ``auto`` is fp32, so the two columns train the same thing: the script says so
and measures the timings anyway (ratio ≈ 1).

    python benchmarks/precision.py                 # ≈ 15 min on 2 CPU cores with bf16 units
    python benchmarks/precision.py --archs 4 --repeats 1 --train-subset 2048     # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import optuna
import pandas as pd
import yaml
from scipy import stats

from space_table import OUT as TABLE
from space_table import designs, space_and_config
from pisearch.data import load_dataset
from pisearch.rules import deepreshape
from pisearch.spec import resnet
from pisearch.train import Fidelity, machine_line, resolved_precision, seeded_build, train_proxy

ROOT = Path(__file__).resolve().parents[1]


def timed(spec, splits, fidelity: Fidelity) -> tuple[float, float]:
    """(wall seconds, validation accuracy) of one proxy training of ``spec``."""
    start = time.perf_counter()
    result = train_proxy(seeded_build(spec, fidelity), splits.train, splits.val, fidelity)
    return time.perf_counter() - start, result.accuracy


def timing_row(name: str, spec, splits, fidelity: Fidelity, repeats: int) -> dict:
    """Median wall seconds of fp32 and auto (interleaved ``repeats`` times each) and their ratio."""
    seconds = {"fp32": [], "auto": []}
    for _ in range(repeats):
        for precision in seconds:
            seconds[precision].append(timed(spec, splits, fidelity.model_copy(update={"precision": precision}))[0])
    fp32, auto = (statistics.median(seconds[p]) for p in ("fp32", "auto"))
    return {"workload": name, "fp32_s": round(fp32, 2), "auto_s": round(auto, 2), "speed-up": round(fp32 / auto, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", type=int, default=12, help="architectures for Kendall τ between the precisions")
    ap.add_argument("--repeats", type=int, default=2, help="timed trainings per precision and workload")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-subset", type=int, default=16384)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    auto = resolved_precision(Fidelity(precision="auto"), "cpu")
    print(f"machine: {machine_line()}")
    if auto == "fp32":
        print("this CPU has no bf16 units: precision auto is fp32 here, so both columns train in fp32")

    quick = yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())
    digits = load_dataset("digits", resolution=16)
    rule = deepreshape(10000, resolution=16, num_classes=10).spec
    fashion32 = load_dataset("fashion_mnist", resolution=32, val_fraction=0.05)
    rn18 = resnet((16, 32, 64, 128), (2, 2, 2, 2), resolution=32, num_classes=10)
    rows = [timing_row("quickstart trial (digits 16², rule 10K design)", rule, digits,
                       Fidelity.model_validate(quick["fidelity"]), args.repeats),
            timing_row("ResNet18 16-32-64-128, Fashion-MNIST 32², 1 × 2,048", rn18, fashion32,
                       Fidelity(epochs=1, train_subset=2048, threads=1), args.repeats)]
    print("\nwall seconds per proxy training (median; ratio = fp32 / auto):")
    for row in rows:
        print(f"  {row['workload']:<52} fp32 {row['fp32_s']:>6.2f}  auto ({auto}) {row['auto_s']:>6.2f}  "
              f"×{row['speed-up']:.2f}")

    ns = argparse.Namespace(resolution=16, seed=0, epochs=args.epochs, train_subset=args.train_subset)
    space, _ = space_and_config(ns)
    fashion16 = load_dataset("fashion_mnist", resolution=16, val_fraction=0.05)
    proxy = Fidelity(epochs=args.epochs, train_subset=args.train_subset, batch_size=64, warmup_epochs=0.2, threads=1)
    accuracies = {"fp32": [], "auto": []}
    print(f"\n{args.archs} designs of the search-vs-rule space, {args.epochs} epochs × {args.train_subset:,} "
          "Fashion-MNIST images at 16²:")
    specs = [spec for _, spec in designs(space, args.archs, 0, num_classes=10, in_channels=3)]
    for i, spec in enumerate(specs):
        for precision in accuracies:
            seconds, acc = timed(spec, fashion16, proxy.model_copy(update={"precision": precision}))
            accuracies[precision].append(acc)
        print(f"  design {i:>2}: fp32 {accuracies['fp32'][-1]:.4f}  auto {accuracies['auto'][-1]:.4f}  "
              f"({spec.summary()})", flush=True)
    tau = stats.kendalltau(accuracies["fp32"], accuracies["auto"]).statistic
    gap = max(abs(a - b) for a, b in zip(accuracies["fp32"], accuracies["auto"]))
    print(f"\nKendall τ fp32 vs auto ({auto}) over {args.archs} architectures: {tau:.2f}; largest accuracy gap "
          f"{gap:.4f}")
    noise_floor(specs, accuracies["fp32"], args)


def noise_floor(specs: list, fp32: list[float], args: argparse.Namespace) -> None:
    """Kendall τ between two fp32 *training seeds* of the same designs, from the tabular benchmark's seed-1 rows
    (when it has them at this proxy): what τ between precisions can be at most, given seed noise."""
    if not TABLE.exists() or (args.epochs, args.train_subset) != (2, 16384):
        return
    rows = pd.read_csv(TABLE)
    again = dict(zip(rows[rows["train_seed"] == 1]["spec_hash"], rows[rows["train_seed"] == 1]["accuracy"]))
    pairs = [(a, again[s.hash]) for s, a in zip(specs, fp32) if s.hash in again]
    if len(pairs) >= 4:
        tau = stats.kendalltau(*zip(*pairs)).statistic
        print(f"noise floor: Kendall τ between fp32 training seeds 0 and 1 of {len(pairs)} of these designs "
              f"(benchmarks/space_table.py's rows): {tau:.2f}")


if __name__ == "__main__":
    main()
