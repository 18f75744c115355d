"""Linearization methods at equal total compute: SNL, AutoReP, coordinate descent and the naive baseline.

``--dataset fashion_mnist`` (the measurement): a ResNet18-shaped teacher (CIFAR stem, basic blocks 2-2-2-2,
widths 8-16-32-64, grey 32×32 inputs: 69,632 ReLUs, every site counted; widths 16-32-64-128 train at 219
images/s on one thread against 612, too slow for 48 runs on a shared CPU), trained 8 epochs (pisearch.train
defaults) once and cached under ``~/.cache/pisearch/linearize/``; budgets 1 / 2.5 / 5 / 10 % of its ReLUs,
seeds 0 1 2; each run 0.2 search + 0.1 finetune epochs (181 + 91 steps of 64 images); validation decisions on
2,000 held-out training images, test top-1 on the 10,000 test images. ``--dataset digits`` (the default): the
quick smoke mode (ResNet 16-32-64, one block per stage, 16×16, budgets 5 / 10 / 25 %, one seed, 6 + 4 epochs,
143 validation images).
Every method gets the same total compute, ``search_epochs + finetune_epochs`` of training steps: what a search
does not use (SNL stopping early, naive having none) goes to the final KD finetune, and coordinate descent pays
for each candidate block's validation pass (pisearch.linearize.settings: forward = 1/3 of a training image).
Prints one line per run, then the mean ± sd tables (test top-1, validation top-1 before the final finetune),
the compute table and which of the papers' orderings held; ``--log`` appends every run's report as a JSON line.
Run: ``python benchmarks/linearize.py --dataset fashion_mnist [--seeds 0,1,2] [--budgets 1,5] [--methods snl,cd]
[--preset short] [--set cd.tau=2] [--threads 1]`` (≈ 80 min on one shared CPU thread).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from pisearch.cost import count
from pisearch.data import Splits, load_dataset
from pisearch.linearize import linearize
from pisearch.spec import ArchSpec, resnet
from pisearch.train import Fidelity, evaluate, seeded_build, train_proxy

METHODS = ("naive", "snl", "autorep", "cd")
CACHE = Path.home() / ".cache" / "pisearch" / "linearize"


@dataclass(frozen=True)
class Profile:
    """One benchmark setting: data, teacher, budgets (fractions of the teacher's ReLUs) and compute per run."""

    dataset: str
    spec: Callable[[], ArchSpec]
    val_fraction: float
    train: Fidelity
    fractions: tuple[float, ...]
    search_epochs: float
    finetune_epochs: float
    seeds: tuple[int, ...]


PROFILES = {
    "digits": Profile("digits", lambda: resnet((16, 32, 64), (1, 1, 1), resolution=16, num_classes=10), 0.1,
                      Fidelity(epochs=8), (0.05, 0.10, 0.25), 6, 4, (0,)),
    "fashion_mnist": Profile("fashion_mnist", lambda: resnet((8, 16, 32, 64), (2, 2, 2, 2), resolution=32,
                                                             num_classes=10, in_channels=1),
                             1 / 30, Fidelity(epochs=8), (0.01, 0.025, 0.05, 0.10), 0.2, 0.1, (0, 1, 2)),
}


def load_splits(p: Profile, spec: ArchSpec) -> Splits:
    return load_dataset(p.dataset, resolution=spec.resolution, channels=spec.in_channels, val_fraction=p.val_fraction)


def teacher(p: Profile, spec: ArchSpec, splits: Splits) -> tuple[torch.nn.Module, dict]:
    """The trained all-ReLU network of ``p``, from the cache when it is there (keyed by dataset, spec hash,
    training fidelity and validation share), else trained and cached. Returns (model, accuracies + seconds)."""
    fidelity = hashlib.sha256(p.train.model_dump_json().encode()).hexdigest()[:8]
    key = f"{p.dataset}-{spec.hash}-{fidelity}-v{len(splits.val)}"
    path = CACHE / f"{key}.pt"
    model = seeded_build(spec, p.train)
    if path.exists():
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved.pop("state_dict"))
        return model.eval(), saved
    start = time.perf_counter()
    result = train_proxy(model, splits.train, splits.val, p.train)
    info = {"val": result.accuracy, "test": evaluate(model, splits.test), "train_epochs": p.train.epochs,
            "seconds": round(time.perf_counter() - start, 1)}
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), **info}, path)
    return model.eval(), info


def parse_overrides(items: Sequence[str]) -> dict:
    """``a.b=value`` items as nested settings (values read as JSON when they parse, else as strings)."""
    out: dict = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def run_all(p: Profile, spec: ArchSpec, model: torch.nn.Module, splits: Splits, args: argparse.Namespace,
            settings: dict) -> list[dict]:
    """Every (seed, budget, method) run, seed outermost so that an interrupted run still has whole tables;
    one printed line and one ``--log`` JSON line each."""
    relus, rows = count(spec).relus, []
    for seed in args.seeds:
        for fraction in args.fractions:
            for method in args.methods:
                report = linearize(method, model, spec, splits, round(fraction * relus), {**settings, "seed": seed})[2]
                rows.append({"fraction": fraction, "seed": seed, **report})
                print(f"{fraction:>6.1%} {method:>8} seed {seed}: test {report['test_accuracy']:.4f}  val "
                      f"{report['accuracy']:.4f}  before finetune {report['accuracy_before_finetune']:.4f}  "
                      f"compute {report['compute_steps']:.0f} steps ({report['search_compute']:.0f} search, "
                      f"{report['eval_images']:,} judged images)  {report['search_seconds']:.0f}+"
                      f"{report['finetune_seconds']:.0f} s", flush=True)
                if args.log:
                    with open(args.log, "a") as fh:
                        fh.write(json.dumps({"dataset": p.dataset, **rows[-1]}) + "\n")
    return rows


def mean_sd(values: Sequence[float], scale: float = 100) -> str:
    """``mean ± sd`` (sample sd; just the mean for one value, – for none) of ``values`` × ``scale``."""
    if not values:
        return "–"
    values = [v * scale for v in values]
    sd = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.2f}{sd}"


def tables(rows: list[dict], fractions: Sequence[float], methods: Sequence[str], relus: int) -> str:
    """Markdown: test top-1 (%) per method × budget, validation top-1 straight after the selection (before the
    final finetune), and each method's mean compute."""
    def pick(method, fraction, key):
        return [r[key] for r in rows if r["method"] == method and r["fraction"] == fraction]

    head = "| method | " + " | ".join(f"{f:.1%} ({round(f * relus):,})" for f in fractions) + " |"
    rule = "|---" * (len(fractions) + 1) + "|"
    out = []
    for title, key in (("test top-1, %", "test_accuracy"), ("validation top-1 before the final finetune, %",
                                                             "accuracy_before_finetune")):
        out += [f"\n{title} (mean ± sd over seeds)\n", head, rule]
        out += [f"| {m} | " + " | ".join(mean_sd(pick(m, f, key)) for f in fractions) + " |" for m in methods]
    out += ["\ncompute per run (mean over budgets and seeds)\n",
            "| method | search steps | judged val images | search compute (steps) | finetune steps | total (steps) "
            "| search s | finetune s |", "|---" * 8 + "|"]
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        avg = {k: statistics.mean(r[k] for r in mine) for k in ("search_steps", "eval_images", "search_compute",
                                                                 "finetune_steps", "compute_steps", "search_seconds",
                                                                 "finetune_seconds")}
        out.append(f"| {m} | {avg['search_steps']:.0f} | {avg['eval_images']:,.0f} | {avg['search_compute']:.0f} | "
                   f"{avg['finetune_steps']:.0f} | {avg['compute_steps']:.0f} | {avg['search_seconds']:.0f} | "
                   f"{avg['finetune_seconds']:.0f} |")
    return "\n".join(out)


def gap(rows: list[dict], a: str, b: str, fraction: float) -> tuple[float, float | None] | None:
    """Mean and sd over seeds of test top-1 of ``a`` minus ``b`` (points), paired by seed; None without a pair."""
    test = {(r["method"], r["seed"]): r["test_accuracy"] for r in rows if r["fraction"] == fraction}
    diffs = [100 * (test[a, s] - test[b, s]) for (m, s) in test if m == a and (b, s) in test]
    if not diffs:
        return None
    return statistics.mean(diffs), statistics.stdev(diffs) if len(diffs) > 1 else None


def claims(rows: list[dict], fractions: Sequence[float], methods: Sequence[str]) -> str:
    """Which of the papers' orderings held: AutoReP ≥ SNL at the two lowest budgets, CD ≥ SNL at one or more."""
    lines = []

    def line(a, b, f):
        if gap(rows, a, b, f) is None:
            lines.append(f"- {a} − {b} at {f:.1%}: not measured")
            return False
        mean, sd = gap(rows, a, b, f)
        lines.append(f"- {a} − {b} at {f:.1%}: {mean:+.2f}" + (f" ± {sd:.2f}" if sd is not None else "") +
                     f" points ({'holds' if mean >= 0 else 'does not hold'})")
        return mean >= 0

    if {"autorep", "snl"} <= set(methods):
        lines.append("AutoReP ≥ SNL at the two lowest budgets (AutoReP: +6 to +9 points at 12.9K on CIFAR):")
        held = [line("autorep", "snl", f) for f in sorted(fractions)[:2]]
        lines.append(f"  → {'held' if all(held) else 'did not hold'}")
    if {"cd", "snl"} <= set(methods):
        lines.append("CD ≥ SNL at one or more budgets (coordinate descent: state of the art):")
        held = [line("cd", "snl", f) for f in sorted(fractions)]
        lines.append(f"  → {'held' if any(held) else 'did not hold'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(PROFILES), default="digits")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--budgets", help="comma-separated percentages of the teacher's ReLUs (default: the profile's)")
    ap.add_argument("--seeds", help="comma-separated linearization seeds (the teacher is fixed; default: the "
                    "profile's)")
    ap.add_argument("--search-epochs", type=float, help="default: the profile's")
    ap.add_argument("--finetune-epochs", type=float, help="default: the profile's")
    ap.add_argument("--preset", default="short", choices=("short", "paper"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a LinearizeSettings override, e.g. snl.lambda0=1e-2 (repeatable)")
    ap.add_argument("--log", help="append every run's report here as a JSON line")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: on a shared 2-core machine, 2 "
                    "threads under contention ran AutoReP 4× slower)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    p = PROFILES[args.dataset]
    args.methods = args.methods.split(",")
    args.fractions = [float(b) / 100 for b in args.budgets.split(",")] if args.budgets else list(p.fractions)
    args.seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(p.seeds)
    settings = {"preset": args.preset, "search_epochs": p.search_epochs if args.search_epochs is None
                else args.search_epochs, "finetune_epochs": p.finetune_epochs if args.finetune_epochs is None
                else args.finetune_epochs, **parse_overrides(args.set)}

    spec = p.spec()
    splits = load_splits(p, spec)
    relus = count(spec).relus
    model, info = teacher(p, spec, splits)
    print(f"teacher: {spec.summary()}, {relus:,} ReLUs (every site), {info['train_epochs']} epochs "
          f"({info['seconds']:.0f} s when trained): validation top-1 {info['val']:.4f}, test {info['test']:.4f}; "
          f"{len(splits.train):,} train / {len(splits.val):,} validation / {len(splits.test):,} test images")
    print(f"each run: {settings}\n", flush=True)
    rows = run_all(p, spec, model, splits, args, settings)
    print(tables(rows, args.fractions, args.methods, relus))
    print("\n" + claims(rows, args.fractions, args.methods))


if __name__ == "__main__":
    main()
