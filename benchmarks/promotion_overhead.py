"""Wall time that multi-fidelity promotion adds to a study, as a fraction of its lowest level (issue 13 target:
≤ 50 % on the quickstart). Runs studies/quickstart.yaml with one extra level (each promoted candidate re-trained
with ``--epochs-factor`` × the epochs) into a temporary folder and prints level-0 and promotion seconds.

    python benchmarks/promotion_overhead.py [--trials 24] [--epsilon 0.01] [--epochs-factor 2]
"""

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from pisearch.study import load_study_config, run_study

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--epsilon", type=float, default=0.01)
    ap.add_argument("--epochs-factor", type=int, default=2)
    args = ap.parse_args()
    config, space = load_study_config(ROOT / "studies" / "quickstart.yaml")
    epochs = config.fidelity.epochs * args.epochs_factor
    config = config.model_copy(update={"fidelities": [{"epochs": epochs}], "dashboard": False,
                                       "promotion": config.promotion.model_copy(update={"epsilon": args.epsilon})})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_study(config, space, n_trials=args.trials, out_dir=Path(tmp) / "run", progress=False)
        wall = time.perf_counter() - start
        df: pd.DataFrame = result.trials
    level0 = df[df["level"] == 0]
    level1 = df[df["level"] == 1]
    t0 = pd.to_datetime(level0["datetime_start"]).min(), pd.to_datetime(level0["datetime_complete"]).max()
    t1 = pd.to_datetime(level1["datetime_start"]).min(), pd.to_datetime(level1["datetime_complete"]).max()
    s0, s1 = (t0[1] - t0[0]).total_seconds(), (t1[1] - t1[0]).total_seconds() if len(level1) else 0.0
    print(f"quickstart, {args.trials} trials, level 1 = {epochs} epochs, epsilon {args.epsilon}")
    print(f"level 0: {len(level0)} trials, {s0:.1f} s wall, {level0['train_seconds'].sum():.1f} s training")
    print(f"level 1: {len(level1)} promoted (front + band + baselines), {s1:.1f} s wall, "
          f"{level1['train_seconds'].sum():.1f} s training")
    print(f"promotion overhead: {s1 / s0:.0%} of level 0 (target ≤ 50 %); whole run {wall:.1f} s")


if __name__ == "__main__":
    main()
