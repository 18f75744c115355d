"""DeepReShape rule: time per call (target < 1 ms) and how close it gets to each budget from 15K to 1M ReLUs.

Prints the first (cold: the layouts' lines are counted once and cached) and the warm time per call, then a
budget → spec table (regime ratios, m, culled/thinned stages, ReLUs, slack) and slack statistics.
Run: ``python benchmarks/rule_speed.py [--resolution R] [--convention A|B] [--width-multiple W]``.
"""

import argparse
import statistics
import time
import timeit

import numpy as np

from pisearch.rules import deepreshape

BUDGETS = (15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000, 75_000, 100_000, 125_000, 150_000, 180_000,
           200_000, 250_000, 300_000, 400_000, 500_000, 557_056, 600_000, 750_000, 1_000_000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--convention", default="A")
    ap.add_argument("--width-multiple", type=int, default=8)
    args = ap.parse_args()
    kw = {"resolution": args.resolution, "convention": args.convention, "width_multiple": args.width_multiple}
    scale = args.resolution**2 / 32**2
    budgets = [int(b * scale) for b in BUDGETS]

    t0 = time.perf_counter()
    for b in budgets:
        deepreshape(b, **kw)
    cold = (time.perf_counter() - t0) / len(budgets)
    n = 20
    warm = timeit.timeit(lambda: [deepreshape(b, **kw) for b in budgets], number=n) / (n * len(budgets))
    print(f"deepreshape(): cold {cold * 1e3:.3f} ms/call (first calls, caches filling), "
          f"warm {warm * 1e3:.3f} ms/call (target < 1 ms)")

    print(f"\n{'budget':>10} {'ratios':>7} {'m':>4} {'layout':<45} {'relus':>10} {'slack %':>8}")
    slacks = []
    for b in budgets:
        r = deepreshape(b, **kw)
        slacks.append(100 * r.slack_fraction)
        layout = (f"cull {'+'.join(r.layout.culled)}" if r.layout.culled else "full") + (
            f"; thin {'+'.join(r.layout.thinned)}" if r.layout.thinned else "")
        print(f"{b:>10,} {','.join(map(str, r.ratios)):>7} {r.base_width:>4} {layout:<45} {r.relus:>10,} "
              f"{slacks[-1]:>8.1f}")
    dense = [100 * deepreshape(int(b), **kw).slack_fraction for b in np.geomspace(budgets[0], budgets[-1], 400)]
    for name, s in (("table", slacks), ("400 log-spaced budgets", dense)):
        print(f"slack % over {name}: min {min(s):.1f}, median {statistics.median(s):.1f}, "
              f"mean {statistics.mean(s):.1f}, max {max(s):.1f}")


if __name__ == "__main__":
    main()
