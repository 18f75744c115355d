"""Does the search beat DeepReShape's O(1) rule at the same ReLU budget, by more than seed noise, and at what
compute, and does it beat random sampling of its own space? (issues 19, 28). One command runs the whole experiment
and prints its tables.

Studies (each with ``--study-seeds`` sampler seeds, the same trial count, every one in the quickstart space's
DeepReShape design space at ``--resolution``, ReLU window 2K–30K in 5 log-spaced bins, a compute cap near the rule's MACs):

* a sampler's name (``cost_ehvi``, ``random``, ``tpe``, ``gp``, ``nsga2`` …; default: the study default and
  random): a plain search of the space with the rule points as baselines (trained and compared, never seeds); after
  the search the verdict stage (``compare: {seeds: S}``) re-trains every rule point and the searched contenders with
  S training seeds, so compare.csv holds mean ± sd and paired verdicts by ReLUs and by latency.
* ``seeded``: the same with NSGA-II seeded with the rule's designs (``init: {rule: true, neighbours: 1}``).

Printed: whether the proxy separates the rule's budgets at all (its most-ReLU point against its fewest, paired
over the training seeds: :func:`~pisearch.report.relu_sensitivity`); per rule budget, the rule's accuracy mean ± sd
(training seeds, pooled over study seeds), each search's best contender at ≤ the rule's ReLUs (mean ± sd),
the verdicts of every study seed by ReLUs and by latency, and the compute ratio (the study's total training
seconds / the rule points'); per budget and study seed, each contender with its paired 95 % interval, and the tally
the issue asks for (win-or-tie share and wins, by ReLUs and by latency); the best single-seed accuracy ≤ the rule's ReLUs of every plain search; and the
shared-range hypervolume of every study's searched points against random's at equal trials (mean over study
seeds). ReLUs: convention A (stem kept).

Every study writes its run folder under ``--out`` and resumes from it, so an interrupted run continues.

    python benchmarks/search_vs_rule.py --dataset fashion_mnist            # ≈ 3 h on 2 CPU cores
    python benchmarks/search_vs_rule.py --dataset fashion_mnist --quick    # smoke run, a few minutes
    python benchmarks/search_vs_rule.py --dataset cifar100 --device cuda --resolution 32 --trials 48 --epochs 10 \
        --train-subset 0
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import pandas as pd

from pisearch.report import compare_table, measured, relu_sensitivity, shared_hypervolume, trials_table
from pisearch.space import SearchSpace
from pisearch.study import StudyConfig, run_study
from pisearch.study.config import SamplerConfig
from pisearch.study.samplers import SAMPLERS
from pisearch.study.records import VERDICT_RUNS

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "search_spaces" / "quickstart.yaml"
# At 16²: five distinct rule designs (2,560 … 23,296 ReLUs), the ReLU window and the compute cap's default; ReLU
# counts and MACs grow with the pixel count, so other resolutions scale all three by (resolution / 16)².
BUDGETS = [3000, 5000, 10000, 16000, 24000]
WINDOW = (2000, 30000)
MAX_MACS = 12_000_000  # the rule's designs: 11.1M MACs at 16²
VARIANTS = ("seeded", *SAMPLERS)
DEFAULT_VARIANTS = (SamplerConfig().name, "random")  # the study default against random sampling


def study_config(variant: str, seed: int, args: argparse.Namespace) -> StudyConfig:
    """The study file of one (variant, study seed) cell."""
    seeded = variant == "seeded"
    scale = (args.resolution / 16) ** 2
    sampler = {"name": "nsga2" if seeded else variant}
    if sampler["name"] == "nsga2":
        sampler["population_size"] = args.population
    doc = {
        "name": f"{variant}-s{seed}", "space": str(SPACE), "seed": seed, "n_trials": args.trials, "jobs": args.jobs,
        "dataset": {"name": args.dataset, "resolution": args.resolution, "val_fraction": args.val_fraction},
        "fidelity": {"epochs": args.epochs, "train_subset": args.train_subset or None, "batch_size": 64,
                     "warmup_epochs": args.warmup_epochs,
                     "threads": 1 if args.device == "cpu" else None, "precision": args.precision},
        "device": args.device, "sampler": sampler, "dashboard": False,
        "budget": {"min_relus": round(WINDOW[0] * scale), "max_relus": round(WINDOW[1] * scale), "bins": 5,
                   "max_macs": args.max_macs or round(MAX_MACS * scale)},
        "baselines": {"deepreshape": {"budgets": [round(b * scale) for b in BUDGETS]}},
        "init": {"rule": True, "neighbours": args.neighbours} if seeded else {},
        "compare": {"seeds": args.compare_seeds},
    }
    return StudyConfig.model_validate(doc)


def space_at(resolution: int) -> SearchSpace:
    """The quickstart space at ``resolution``², its own 16² compute cap left to the study's (scaled) one."""
    doc = {**SearchSpace.load(SPACE).to_dict(), "resolution": resolution, "budget": {}}
    return SearchSpace.from_dict(doc, source=f"{SPACE} at {resolution}²")


def run_cell(variant: str, seed: int, args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame | None, float]:
    """(trials table, compare table or None, wall seconds) of one study, run or resumed under ``--out``."""
    out = Path(args.out) / args.dataset / f"{variant}-s{seed}"
    start = time.perf_counter()
    result = run_study(study_config(variant, seed, args), space_at(args.resolution), out_dir=out,
                       progress=not args.quiet)
    wall = time.perf_counter() - start
    compare = pd.read_csv(out / "compare.csv") if (out / "compare.csv").exists() else None
    if compare is not None and (out / VERDICT_RUNS).exists():
        sensitivity = relu_sensitivity(compare, pd.read_csv(out / VERDICT_RUNS))
        if sensitivity is not None:
            print(f"[{variant} seed {seed}] {sensitivity['text']}", flush=True)
    print(f"[{variant} seed {seed}] {len(result.trials)} trials in {wall:.0f} s -> {out}", flush=True)
    return trials_table(result.trials), compare, wall


def searched(trials: pd.DataFrame) -> pd.DataFrame:
    """Measured searched and seeded trials at level 0 (the points a sampler produced)."""
    m = measured(trials)
    return m[(m["level"] == 0) & m["source"].isin(["search", "seed"])]


def mean_sd(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "–"
    s = pd.Series(values)
    return f"{s.mean():.4f}±{(s.std() if len(s) > 1 else 0.0):.4f}"


def variant_table(compares: list[pd.DataFrame]) -> pd.DataFrame:
    """Per budget, pooled over study seeds: rule and search accuracy (means of the training seeds), verdicts."""
    rows = []
    for budget, group in pd.concat(compares).groupby("budget", sort=True):
        rows.append({
            "budget": int(budget), "rule_relus": int(group["rule_relus"].iloc[0]),
            "rule": mean_sd(group["rule_accuracy_mean"].tolist()),
            "search": mean_sd(group["search_accuracy_mean"].tolist()),
            "search_relus": " ".join(f"{r:,.0f}" for r in group["search_best_relus"]),
            "search_latency_acc": mean_sd(group["latency_accuracy_mean"].tolist()),
            "verdicts": ",".join(str(v) for v in group["verdict"]),
            "verdicts_latency": ",".join(str(v) for v in group["verdict_latency"]),
            "compute_ratio": f"{group['compute_ratio'].mean():.1f}",
        })
    return pd.DataFrame(rows)


# compare.csv's columns for each cost: (contender prefix, accuracy mean, interval prefix, verdict)
VERDICT_COLUMNS = {"relus": ("search_best_", "search_accuracy_mean", "difference_", "verdict"),
                   "latency": ("latency_best_", "latency_accuracy_mean", "latency_difference_", "verdict_latency")}


def verdict_table(compares: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One row per (budget, study seed): the contender by ReLUs and by latency (trial number and ReLUs), its
    accuracy mean over the training seeds, the paired 95 % interval of its difference from the rule and the verdict."""
    rows = []
    for seed, table in compares.items():
        for _, r in table.iterrows():
            row = {"budget": int(r["budget"]), "study_seed": seed}
            for side, (best, mean, diff, verdict) in VERDICT_COLUMNS.items():
                number = r[best + "number"]
                row |= {f"by_{side}": f"#{number:.0f} {r[best + 'relus']:,.0f}" if pd.notna(number) else "–",
                        f"{side}_acc": f"{r[mean]:.4f}",
                        f"{side}_interval": f"{r[diff + 'low']:+.4f}…{r[diff + 'high']:+.4f}",
                        f"{side}_verdict": r[verdict]}
            rows.append(row | {"compute_ratio": f"{r['compute_ratio']:.1f}"})
    return pd.DataFrame(rows).sort_values(["budget", "study_seed"], kind="stable")


def tally(verdicts: pd.DataFrame) -> str:
    """The issue's must-show counts over (budget, study seed) cells: win-or-tie share and wins, by each cost."""
    parts = []
    for side in VERDICT_COLUMNS:
        v = verdicts[f"{side}_verdict"]
        per_seed = verdicts[v == "win"].groupby("study_seed")["budget"].nunique().max()
        parts.append(f"by {side}: win or tie {int(v.isin(['win', 'tie']).sum())}/{len(v)}, "
                     f"wins {int((v == 'win').sum())} (most in one study seed: {0 if pd.isna(per_seed) else per_seed})")
    return "; ".join(parts)


def plain_table(trials: dict[tuple[str, int], pd.DataFrame], rule: pd.DataFrame) -> pd.DataFrame:
    """Best single-seed accuracy at ≤ each rule point's ReLUs, per variant (mean ± sd over study seeds)."""
    rows = []
    for _, point in rule.drop_duplicates("budget").iterrows():
        row = {"budget": int(point["budget"]), "rule_relus": int(point["rule_relus"])}
        for variant in dict.fromkeys(v for v, _ in trials):
            best = [searched(t)[searched(t)["relus"] <= point["rule_relus"]]["accuracy"].max()
                    for (v, _), t in trials.items() if v == variant]
            row[variant] = mean_sd([float(b) for b in best])
        rows.append(row)
    return pd.DataFrame(rows)


def hypervolume_table(trials: dict[tuple[str, int], pd.DataFrame], seeds: list[int]) -> pd.DataFrame:
    """Shared-range hypervolume of each variant's searched points / random's, per study seed and their mean."""
    rows = []
    for variant in dict.fromkeys(v for v, _ in trials):
        if variant == "random" or (variant, seeds[0]) not in trials:
            continue
        ratios = [shared_hypervolume(searched(trials[(variant, s)]), searched(trials[("random", s)]))["ratio"]
                  for s in seeds if ("random", s) in trials]
        rows.append({"variant": variant, "ratios": " ".join(f"{r:.3f}" for r in ratios),
                     "mean": sum(ratios) / len(ratios) if ratios else math.nan})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--trials", type=int, default=36, help="trials per study (baselines and seeds included)")
    ap.add_argument("--neighbours", type=int, default=1, help="mutated neighbours per rule design (seeded)")
    ap.add_argument("--max-macs", type=int, default=0, help="compute cap per candidate (default: 12M at 16², "
                    "scaled by the pixel count; the rule's designs have 11.1M MACs at 16²)")
    ap.add_argument("--population", type=int, default=8, help="NSGA-II population")
    ap.add_argument("--epochs", type=int, default=2, help="proxy epochs (2 × 16,384 images separates the rule's "
                    "budgets at 16²; 1 × 4,096 does not)")
    ap.add_argument("--train-subset", type=int, default=16384, help="training images per epoch (0: all of train)")
    ap.add_argument("--warmup-epochs", type=float, default=0.2, help="linear warm-up of the proxy, in epochs")
    ap.add_argument("--precision", default="fp32", help="training precision (fp32: the tabular benchmark's, the "
                    "same on every CPU; auto: bf16 where the CPU has it)")
    ap.add_argument("--val-fraction", type=float, default=0.05, help="validation share of the train split")
    ap.add_argument("--study-seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="study seeds run: first-seed … first-seed + "
                    "study-seeds − 1 (e.g. to run one seed in another process)")
    ap.add_argument("--compare-seeds", type=int, default=3, help="training seeds of the verdicts")
    ap.add_argument("--jobs", default="auto", help="worker processes per study")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"any of {', '.join(VARIANTS)}")
    ap.add_argument("--out", default=str(ROOT / "runs" / "search_vs_rule"))
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 study seed, 10 trials, 1 epoch × 256")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args()
    if args.jobs != "auto":
        args.jobs = int(args.jobs)
    if args.quick:
        args.study_seeds, args.trials, args.epochs, args.train_subset, args.compare_seeds = 1, 10, 1, 256, 2
        args.out = str(Path(args.out) / "quick")
    variants = args.variants.split(",")
    if unknown := [v for v in variants if v not in VARIANTS]:
        ap.error(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    seeds = list(range(args.first_seed, args.first_seed + args.study_seeds))
    start = time.perf_counter()
    cells = {(v, s): run_cell(v, s, args) for s in seeds for v in variants}
    trials = {key: cell[0] for key, cell in cells.items()}
    compares = {(v, s): cell[1] for (v, s), cell in cells.items() if cell[1] is not None}
    seconds = {v: sum(pd.to_numeric(cells[(v, s)][0]["train_seconds"], errors="coerce").sum() for s in seeds)
               for v in variants}
    print(f"\n{args.dataset} at {args.resolution}², {args.trials} trials per study, proxy {args.epochs} epochs × "
          f"{args.train_subset} images, {len(seeds)} study seed(s), verdicts over {args.compare_seeds} training "
          f"seeds; ReLUs convention A; wall {time.perf_counter() - start:.0f} s")
    print("training seconds per variant (all study seeds): "
          + ", ".join(f"{v} {s:.0f}" for v, s in seconds.items()))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        for variant in variants:
            mine = {s: c for (v, s), c in compares.items() if v == variant}
            if not mine:
                continue
            print(f"\n{variant} vs the rule (accuracy: mean over training seeds; ± over study seeds):")
            print(variant_table(list(mine.values())).to_string(index=False))
            verdicts = verdict_table(mine)
            print("per study seed (contender: trial number and ReLUs; interval: paired 95 % of search − rule):")
            print(verdicts.to_string(index=False))
            print(f"{variant}: {tally(verdicts)}")
        if compares:
            rule = compare_table(trials[next(iter(compares))])
            print("\nbest single-seed accuracy at ≤ the rule's ReLUs (mean ± sd over study seeds):")
            print(plain_table(trials, rule).to_string(index=False))
        if "random" in variants:
            print("\nshared-range hypervolume / random's at equal trials:")
            print(hypervolume_table(trials, seeds).to_string(index=False))


if __name__ == "__main__":
    main()
