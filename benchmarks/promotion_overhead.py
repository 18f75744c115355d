"""Wall time that multi-fidelity promotion adds to a study, as a fraction of its lowest level (issue 13 target:
≤ 50 % on the quickstart). Runs studies/quickstart.yaml with one extra level (``--epochs-factor`` × the epochs)
into a temporary folder, once with ``promotion.warm_start`` (promoted candidates continue from their level-0
weights) and once re-training from scratch, and prints level-0 and promotion seconds of each, how many were
promoted, and Kendall τ between the two modes' level-1 accuracies (same promoted set: level 0 is deterministic).

    python benchmarks/promotion_overhead.py [--trials 24] [--epsilon E] [--epochs-factor 2] [--modes warm fresh]
"""

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from proxy_fidelity import kendall_tau  # benchmarks/ is on sys.path when run as a script

from pisearch.study import load_study_config, run_study
from pisearch.study.config import StudyConfig

ROOT = Path(__file__).resolve().parents[1]
MODES = {"warm": True, "fresh": False}


def span_seconds(rows: pd.DataFrame) -> float:
    """Seconds from the first trial's start to the last one's end."""
    if rows.empty:
        return 0.0
    return (pd.to_datetime(rows["datetime_complete"]).max() - pd.to_datetime(rows["datetime_start"]).min()).total_seconds()


def run_mode(warm: bool, args: argparse.Namespace) -> pd.DataFrame:
    config, space = load_study_config(ROOT / "studies" / "quickstart.yaml")
    promotion = config.promotion.model_copy(update={"warm_start": warm, **({} if args.epsilon is None else
                                                                            {"epsilon": args.epsilon})})
    epochs = config.fidelity.epochs * args.epochs_factor
    config = StudyConfig.model_validate({**config.model_dump(), "fidelities": [{"epochs": epochs}], "dashboard": False,
                                         "promotion": promotion.model_dump()})  # validated: epochs must grow
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        df = run_study(config, space, n_trials=args.trials, out_dir=Path(tmp) / "run", progress=False).trials
        wall = time.perf_counter() - start
    level0, level1 = df[df["level"] == 0], df[df["level"] == 1]
    s0, s1 = span_seconds(level0), span_seconds(level1)
    sources = ", ".join(f"{n} {s}" for s, n in level1["source"].value_counts().items())
    print(f"[{'warm start' if warm else 'from scratch'}] level 1 = {epochs} epochs, epsilon {promotion.epsilon}")
    print(f"  level 0: {len(level0)} trials, {s0:.1f} s wall, {level0['train_seconds'].sum():.1f} s training")
    print(f"  level 1: {len(level1)} promoted ({sources}), {s1:.1f} s wall, "
          f"{level1['train_seconds'].sum():.1f} s training")
    print(f"  promotion overhead: {s1 / s0:.0%} of level 0 (target ≤ 50 %); whole run {wall:.1f} s", flush=True)
    return level1.set_index("number")["accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--epsilon", type=float, default=None, help="default: the study's promotion.epsilon")
    ap.add_argument("--epochs-factor", type=int, default=2)
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    args = ap.parse_args()
    print(f"quickstart, {args.trials} trials")
    level1 = {mode: run_mode(MODES[mode], args) for mode in args.modes}
    if len(level1) == 2:
        warm, fresh = level1["warm"].align(level1["fresh"], join="inner")
        tau = kendall_tau(warm.tolist(), fresh.tolist())
        print(f"level-1 accuracy, warm start vs from scratch over {len(warm)} promoted: Kendall τ {tau:+.3f}, "
              f"mean difference {(warm - fresh).mean():+.4f}")


if __name__ == "__main__":
    main()
