"""Time ``pisearch.cost.count`` on named networks (target: well under 1 ms per spec). Prints µs per call."""

import timeit

from pisearch.cost import count
from pisearch.spec import net

if __name__ == "__main__":
    for name in ("resnet18", "resnet34", "resnet50", "wrn22_8"):
        spec = net(name)
        n = 2000
        t = timeit.timeit(lambda spec=spec: count(spec), number=n) / n
        print(f"{name:10s} {len(spec.sites()):3d} sites  count() {t * 1e6:8.1f} µs  relus {count(spec).relus:,}")
