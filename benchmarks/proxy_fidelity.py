"""Proxy fidelity: does the short proxy rank architectures the way ≥10× longer training does?

Trains up to 15 architectures spanning the shipped search spaces (ResNet18-shaped at base width m = 8, 16, 32, 64;
HybReNet (16; 5,5,3) and (32; 2,5,3); DeepReShape rule points at four budgets; culled stages; a stage of poly;
a deeper and a shallower net; 32×32 inputs) at the proxy fidelity (``--seeds`` seeds, per trainer variant) and
at a reference fidelity that sees ≥5× (GPU and quick scales: ≥10×) more training images (epochs × subset), on the
same train/val split with the same seeds. Prints, and writes as JSON with ``--out``:

* per architecture: ReLUs (convention A: scalar ReLU evaluations per image, stem ReLU kept), MACs, reference
  validation top-1 (mean over ``--reference-seeds``), and the proxy's mean top-1 ± half the seed-to-seed range for every variant;
* per variant: Kendall τ-b and Spearman ρ between the proxy ranking (mean over seeds; a diverged run counts as
  accuracy 0) and the reference ranking, Jaccard overlap of the two accuracy-vs-ReLU Pareto sets, the
  seed-to-seed τ of the proxy itself, the mean seed spread, diverged runs, and seconds of training;
* the reference level's seconds (and, with ``--reference-seeds 2``, its own seed-to-seed τ: how far two runs of
  the reference itself agree; under ``--time-limit`` late architectures may average fewer reference seeds).

Variants (``--variants``, see ``VARIANTS``) change one proxy setting each, so defaults are chosen by τ;
``level1_fresh`` / ``level1_warm`` are a promoted level of 2× the epochs, re-trained from scratch or continued from
the proxy's weights (``promotion.warm_start``), to see which ranks closer to the reference. Variants that train
the same thing for a network (``zero_init_auto`` is ``zero_init_never`` on an all-ReLU net; ``precision_auto`` is
fp32 on a CPU without bf16 units) share one run.
Jobs run in priority order (references, default proxy, then each variant over all architectures, then extra
reference seeds); ``--time-limit`` stops starting new work (and ends running jobs) at that many seconds and
reports what finished; ``--resume`` reuses the runs of an earlier ``--out`` JSON, so a long CPU benchmark can run
in pieces. ``--workers N`` trains N jobs at once in spawned processes (on one GPU this hides the
per-step launch overhead of small networks).

Scales (``--scale``, see ``SCALES``): ``full`` (default; 32², real widths, all 15 architectures, for a GPU);
``quick`` (also ``--quick``): 16×16 inputs, every width ÷4, the first 10 architectures, proxy 2 epochs × 512
images, reference 10 epochs × 1,024 (CPU smoke run / first τ); ``cpu-full``: 32², real widths, the 8 architectures
of ``CPU_FULL_ARCHS`` (m=8 ResNet18 up to HybReNet (16; 5,5,3), 1.05 GMACs), proxy 2 epochs × 512 images (16
steps), reference 2 epochs × 2,560 (5×, 80 steps), 1,000 validation images: about 2.6 hours on one AVX2 core.

Imports only pisearch.spec / cost / rules / data / train (+ torch, numpy; sklearn for digits; pydantic through
Fidelity), so it runs on a bare GPU box.

    python benchmarks/proxy_fidelity.py --dataset fashion_mnist --device cuda --workers 8 --out fm.json
    python benchmarks/proxy_fidelity.py --dataset digits --quick --threads 1
    python benchmarks/proxy_fidelity.py --dataset fashion_mnist --scale cpu-full --threads 1 --reference-seeds 2 \
        --out cpu_full.json [--resume cpu_full.json]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pisearch.cost import count
from pisearch.data import Splits, load_dataset
from pisearch.rules import Layout, deepreshape, rule_spec
from pisearch.spec import ArchSpec, resnet, stage_widths
from pisearch.train import Fidelity, has_non_relu_site, resolved_precision, seeded_build, train_proxy, zero_init_for

# --- architectures -------------------------------------------------------------------------------------------

RESNET18 = (2, 2, 2, 2)
DOUBLING = (2, 2, 2)  # ResNet18's width ratios: m-2m-4m-8m
CULL_BASE = 16        # base width of the culled / poly / deeper / shallower variants
DRS_BUDGETS = {"drs_15k": 15_000, "drs_30k": 30_000, "drs_60k": 60_000, "drs_250k": 250_000}


def _resnet18(m: int, depths: Sequence[int] = RESNET18, acts_at: Iterable[str] = (), kind: str = "identity"):
    """ResNet18-shaped spec builder (widths m-2m-4m-8m) with ``kind`` at every site of the ``acts_at`` stages."""

    def make(resolution: int, divisor: int) -> ArchSpec:
        spec = resnet(stage_widths(max(1, m // divisor), DOUBLING), depths, resolution=resolution)
        stages = set(acts_at)
        return spec.with_acts({s.name: kind for s in spec.sites() if s.stage in stages})

    return make


def _hybrenet(m: int, ratios: tuple[int, ...], layout: Layout = Layout()):
    return lambda resolution, divisor: rule_spec(max(1, m // divisor), ratios, layout, resolution=resolution)


def _rule_point(budget: int):
    """DeepReShape's rule at ``budget`` ReLUs (32², convention A), its base width ÷ divisor at other sizes."""
    r = deepreshape(budget)
    return _hybrenet(r.base_width, r.ratios, r.layout)


# Priority order: the first 10 span every family the quick scale needs.
ARCHS: dict[str, Callable[[int, int], ArchSpec]] = {
    "rn18_m16": _resnet18(16),
    "hybrenet_16_553": _hybrenet(16, (5, 5, 3)),
    "drs_15k": _rule_point(DRS_BUDGETS["drs_15k"]),
    "rn18_m64": _resnet18(64),
    "m16_cull_stem_s1": _resnet18(CULL_BASE, acts_at=("stem", "stage1")),
    "m16_poly_s2": _resnet18(CULL_BASE, acts_at=("stage2",), kind="poly"),
    "rn18_m8": _resnet18(8),
    "hybrenet_32_253": _hybrenet(32, (2, 5, 3)),
    "drs_60k": _rule_point(DRS_BUDGETS["drs_60k"]),
    "rn10_m16": _resnet18(CULL_BASE, depths=(1, 1, 1, 1)),
    "rn18_m32": _resnet18(32),
    "m16_cull_s4": _resnet18(CULL_BASE, acts_at=("stage4",)),
    "rn34_m16": _resnet18(CULL_BASE, depths=(3, 4, 6, 3)),
    "drs_30k": _rule_point(DRS_BUDGETS["drs_30k"]),
    "drs_250k": _rule_point(DRS_BUDGETS["drs_250k"]),
}


# The CPU full-size subset (32², real widths): ResNet18-shaped m = 8 to 32 and a shallower one, a culled and a poly
# net (where zero_init_residual "auto" zero-inits), a DeepReShape rule point with culled stages, and HybReNet
# (16; 5,5,3), the widest net; ResNet18 itself (m=64), HybReNet (32; 2,5,3) and the 250K rule point are left out
# for time.
CPU_FULL_ARCHS = ("rn18_m8", "rn10_m16", "drs_15k", "m16_cull_stem_s1", "m16_poly_s2", "rn18_m16", "rn18_m32",
                  "hybrenet_16_553")


def architectures(names: Sequence[str], resolution: int = 32, divisor: int = 1) -> dict[str, ArchSpec]:
    """The named specs at ``resolution``² with every base width divided by ``divisor`` (at least 1)."""
    return {n: ARCHS[n](resolution, divisor) for n in names}


# --- trainer variants ----------------------------------------------------------------------------------------

Phases = Fidelity | tuple[Fidelity, ...]  # one run, or phases continuing from the previous phase's weights
Variant = Callable[[ArchSpec, Fidelity, int], Phases | None]
LR_WIDTH_REF = 128  # lr_width: lr · min(1, √(128 / widest stage width))


def updated(f: Fidelity, **update) -> Fidelity:
    """A validated copy of ``f`` with ``update``'s fields changed."""
    return Fidelity(**{**f.model_dump(), **update})


def _with(**update) -> Variant:
    return lambda spec, f, n_train: updated(f, **update)


def _lr_by_width(spec: ArchSpec, f: Fidelity, n_train: int) -> Fidelity:
    widest = max(st.width for st in spec.stages)
    return updated(f, lr=f.lr * min(1.0, math.sqrt(LR_WIDTH_REF / widest)))


def _reshape_budget(epoch_factor: float) -> Variant:
    """Same training images (epochs × subset) spread as ``epoch_factor``× the epochs on a 1/factor subset, with
    the warm-up scaled alike (same warm-up images); None (not applicable) when the subset would exceed the
    training set."""

    def make(spec: ArchSpec, f: Fidelity, n_train: int) -> Fidelity | None:
        subset = f.train_subset or n_train
        epochs, new_subset = round(f.epochs * epoch_factor), round(subset / epoch_factor)
        if epochs < 1 or new_subset > n_train or new_subset < f.batch_size:
            return None
        return updated(f, epochs=epochs, train_subset=new_subset, warmup_epochs=f.warmup_epochs * epoch_factor)

    return make


def _epochs_times(k: int) -> Variant:
    return lambda spec, f, n_train: updated(f, epochs=k * f.epochs)


def _no_clip_relu(spec: ArchSpec, f: Fidelity, n_train: int) -> Fidelity:
    """No gradient clipping for all-ReLU networks (networks with a poly or identity site keep it)."""
    return f if has_non_relu_site(spec) else updated(f, grad_clip=None)


VARIANTS: dict[str, Variant] = {
    "default": _with(),
    "zero_init_always": _with(zero_init_residual=True),
    "zero_init_never": _with(zero_init_residual=False),
    "zero_init_auto": _with(zero_init_residual="auto"),
    "no_clip": _with(grad_clip=None),
    "no_clip_relu": _no_clip_relu,
    "no_bn_recal": _with(bn_recalibrate=False),
    "warmup0": _with(warmup_epochs=0.0),
    "warmup0.5": _with(warmup_epochs=0.5),
    "lr_width": _lr_by_width,
    "b128_lr0.4": _with(batch_size=128, lr=0.4),
    "more_epochs": _reshape_budget(2.0),
    "more_data": _reshape_budget(0.2),
    "lr0.1": _with(lr=0.1),
    "augment": _with(augment=True),
    "bf16": _with(precision="bf16"),
    "precision_auto": _with(precision="auto"),
    # a promoted level of 2× the epochs (pisearch's promotion): re-trained from scratch, or warm-started from the
    # proxy's weights for the proxy's epochs again (what promotion.warm_start trains)
    "level1_fresh": _epochs_times(2),
    "level1_warm": lambda spec, f, n_train: (f, f),
}

# --- levels --------------------------------------------------------------------------------------------------

PRESETS = {  # per dataset: validation fraction, proxy and reference Fidelity fields (others: defaults)
    "digits": {"val_fraction": 0.25, "proxy": {}, "reference": {"epochs": 50, "batch_size": 128}},
    "fashion_mnist": {"val_fraction": 0.1, "proxy": {"train_subset": 6000},
                      "reference": {"epochs": 6, "batch_size": 128}},
}
DEFAULT_PRESET = {"val_fraction": 0.1, "proxy": {}, "reference": {"epochs": 50, "batch_size": 128}}
SCALES = {  # input side (px), width divisor, architectures, proxy/reference overrides, validation images, variants
    "full": {"resolution": 32, "divisor": 1, "archs": tuple(ARCHS), "proxy": {}, "reference": {},
             "val_subset": None, "variants": tuple(VARIANTS)},
    "quick": {"resolution": 16, "divisor": 4, "archs": tuple(ARCHS)[:10], "proxy": {"epochs": 2, "train_subset": 512},
              "reference": {"epochs": 10, "train_subset": 1024, "batch_size": 128}, "val_subset": None,
              "variants": ("default",)},
    # 32², real widths on one CPU thread (≈ 2.6 h on one free AVX2 core): a 16-step proxy, a 5× reference of
    # 80 steps at the proxy's batch, 1,000 validation images (the widest net evaluates ≈ 30 images/s)
    "cpu-full": {"resolution": 32, "divisor": 1, "archs": CPU_FULL_ARCHS, "proxy": {"epochs": 2, "train_subset": 512},
                 "reference": {"epochs": 2, "train_subset": 2560, "batch_size": 64}, "val_subset": 1000,
                 "variants": ("default", "zero_init_never", "zero_init_auto", "lr_width", "no_clip_relu", "warmup0")},
}
MIN_RATIO = 5  # the reference must see at least this many times the proxy's training images


def training_images(f: Fidelity, n_train: int) -> int:
    """Images through forward+backward in one run: epochs × (subset rounded down to whole batches)."""
    n = min(f.train_subset or n_train, n_train)
    return f.epochs * (n // min(f.batch_size, n)) * min(f.batch_size, n)


# --- rank statistics -----------------------------------------------------------------------------------------

def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall τ-b (ties in either ranking handled as scipy.stats.kendalltau does); NaN if a ranking is all ties."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    i, j = np.triu_indices(len(x), 1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    denom = math.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float((dx * dy).sum() / denom) if denom else math.nan


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks."""
    x = np.asarray(x, float)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or x[order[end]] != x[order[start]]:
            ranks[order[start:end]] = (start + end + 1) / 2
            start = end
    return ranks


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman ρ: Pearson correlation of the average ranks; NaN if a ranking is all ties."""
    rx, ry = average_ranks(x) - (len(x) + 1) / 2, average_ranks(y) - (len(y) + 1) / 2
    denom = math.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denom) if denom else math.nan


def pareto_set(relus: Sequence[float], accuracy: Sequence[float]) -> set[int]:
    """Indices not dominated on (fewer ReLUs, higher accuracy): no other point is at least as good on both and
    better on one."""
    pts = list(zip(relus, accuracy))
    return {i for i, (r, a) in enumerate(pts)
            if not any(r2 <= r and a2 >= a and (r2 < r or a2 > a) for r2, a2 in pts)}


def jaccard(a: set, b: set) -> float:
    """|a ∩ b| / |a ∪ b| (1 for two empty sets)."""
    return len(a & b) / len(a | b) if a | b else 1.0


# --- jobs ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """One training run: ``level`` is ``reference`` or a variant name."""

    arch: str
    level: str
    seed: int


_WORKER: dict = {}


def _init_worker(data_kwargs: dict, device: str, threads: int | None, val_subset: int | None = None) -> None:
    """Load the dataset once per process (spawned workers, or the main process with --workers 1), keeping the
    first ``val_subset`` validation images of a permutation drawn by seed 0 (None: all)."""
    if threads is not None:
        torch.set_num_threads(threads)
    data = load_dataset(**data_kwargs)
    if val_subset is not None and val_subset < len(data.val):
        keep = torch.randperm(len(data.val), generator=torch.Generator().manual_seed(0))[:val_subset]
        data = Splits(data.train, data.val.subset(keep), data.test)
    _WORKER.update(data=data, device=device)


def _train(spec: ArchSpec, phases: Phases) -> dict:
    """Train one job in this process (each phase continues from the previous one's weights); errors (e.g. out
    of memory) become a failed record, not an exception."""
    data: Splits = _WORKER["data"]
    phases = phases if isinstance(phases, tuple) else (phases,)
    model, seconds = seeded_build(spec, phases[0]), 0.0
    try:
        for fidelity in phases:
            r = train_proxy(model, data.train, data.val, fidelity, device=_WORKER["device"])
            seconds += r.train_seconds
            if r.status != "ok":
                break
    except Exception as e:  # noqa: BLE001 — one failed run (e.g. CUDA out of memory) must not end the benchmark
        return {"accuracy": math.nan, "seconds": 0.0, "status": "error",
                "reason": f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"}
    return {"accuracy": r.accuracy, "seconds": seconds, "status": r.status, "reason": r.reason,
            "retried": r.retried}


def run_key(job: Job, spec: ArchSpec, phases: Phases, device: str) -> str:
    """What a run trains, as JSON: the architecture and its phases with ``auto`` settings resolved for this
    network and device, so variants that train identically (e.g. ``zero_init_auto`` and ``zero_init_never`` on an
    all-ReLU net) share one run, and ``--resume`` finds it in an earlier run's JSON."""
    phases = phases if isinstance(phases, tuple) else (phases,)
    resolved = [updated(f, zero_init_residual=zero_init_for(spec, f), precision=resolved_precision(f, device))
                for f in phases]
    return json.dumps([job.arch, [f.model_dump(mode="json") for f in resolved]], sort_keys=True)


def distinct(work: list[tuple[Job, ArchSpec, Phases]], device: str) -> tuple[list, dict[Job, list[Job]]]:
    """``work`` without runs that repeat an earlier one (same :func:`run_key`), and for each kept job the jobs
    whose result is its result (itself first)."""
    first: dict[str, Job] = {}
    sharers: dict[Job, list[Job]] = {}
    kept = []
    for job, spec, phases in work:
        key = run_key(job, spec, phases, device)
        if key in first:
            sharers[first[key]].append(job)
        else:
            first[key], sharers[job] = job, [job]
            kept.append((job, spec, phases))
    return kept, sharers


def run_jobs(work: list[tuple[Job, ArchSpec, Phases]], init_args: tuple, workers: int, deadline: float,
             on_result: Callable[[Job, dict], None]) -> None:
    """Run ``work`` in order (``workers`` > 1: that many spawned processes, FIFO), calling ``on_result`` as
    jobs finish; at ``deadline`` (time.perf_counter) nothing new starts and running workers are ended."""
    if workers <= 1:
        _init_worker(*init_args)
        for job, spec, fid in work:
            if time.perf_counter() > deadline:
                break
            on_result(job, _train(spec, fid))
        return
    pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=init_args)
    pending = [(job, pool.apply_async(_train, (spec, fid))) for job, spec, fid in work]
    try:
        while pending and time.perf_counter() < deadline:
            waiting = []
            for job, a in pending:
                if a.ready():
                    on_result(job, a.get())
                else:
                    waiting.append((job, a))
            pending = waiting
            time.sleep(0.2)
    finally:
        pool.terminate()
        pool.join()


def plan(specs: dict[str, ArchSpec], proxy: Fidelity, reference: Fidelity, variants: Sequence[str], seeds: int,
         reference_seeds: int, n_train: int) -> list[tuple[Job, ArchSpec, Phases]]:
    """Jobs in priority order: reference seed 0 (most MACs first), the default proxy, each variant, then the
    extra reference seeds. Variants not applicable to this training set are left out."""
    by_cost = sorted(specs, key=lambda n: -count(specs[n]).macs)
    work = [(Job(n, "reference", 0), specs[n], updated(reference, seed=0)) for n in by_cost]
    for v in variants:
        for n in specs:
            for s in range(seeds):
                f = VARIANTS[v](specs[n], updated(proxy, seed=s), n_train)
                if f is not None:
                    work.append((Job(n, v, s), specs[n], f))
    work += [(Job(n, "reference", s), specs[n], updated(reference, seed=s))
             for s in range(1, reference_seeds) for n in by_cost]
    return work


# --- summary -------------------------------------------------------------------------------------------------

def summarize(results: dict[Job, dict], specs: dict[str, ArchSpec], variants: Sequence[str], seeds: int,
              reference_seeds: int) -> dict:
    """Per-architecture rows and per-variant statistics over the architectures whose runs all finished."""
    relus = {n: count(s).relus for n, s in specs.items()}
    acc = lambda job: results[job]["accuracy"] if results[job]["status"] == "ok" else 0.0  # noqa: E731

    def seeds_of(n: str, level: str, k: int) -> list[float] | None:
        jobs = [Job(n, level, s) for s in range(k)]
        return [acc(j) for j in jobs] if all(j in results for j in jobs) else None

    ref = {}  # the reference ranking: mean over the reference seeds that finished (see the table's header)
    for n in specs:
        accs = [results[j]["accuracy"] for s in range(reference_seeds) if (j := Job(n, "reference", s)) in results]
        if accs := [a for a in accs if math.isfinite(a)]:
            ref[n] = float(np.mean(accs))
    rows = []
    for n, spec in specs.items():
        c = count(spec)
        row = {"arch": n, "relus": c.relus, "macs": c.macs, "params": c.params,
               "widths": [st.width for st in spec.stages], "reference": ref.get(n),
               "reference_seeds": seeds_of(n, "reference", reference_seeds), "proxy": {}}
        for v in variants:
            accs = seeds_of(n, v, seeds)
            if accs is not None:
                row["proxy"][v] = {"seeds": accs, "mean": float(np.mean(accs)), "spread": float(np.ptp(accs)),
                                   "failed": [results[Job(n, v, s)]["reason"] for s in range(seeds)
                                              if results[Job(n, v, s)]["status"] != "ok"]}
        rows.append(row)
    by_arch = {r["arch"]: r for r in rows}
    stats = {}
    for v in variants:
        names = [r["arch"] for r in rows if r["reference"] is not None and v in r["proxy"]]
        if len(names) < 3:
            continue
        px = {n: by_arch[n]["proxy"][v] for n in names}
        p, q = [px[n]["mean"] for n in names], [ref[n] for n in names]
        rl = [relus[n] for n in names]
        seed_tau = [kendall_tau([px[n]["seeds"][a] for n in names], [px[n]["seeds"][b] for n in names])
                    for a in range(seeds) for b in range(a + 1, seeds)]
        jobs = [Job(n, v, s) for n in names for s in range(seeds)]
        base = [by_arch[n]["proxy"].get("default", {}).get("mean") for n in names]
        stats[v] = {"n": len(names), "kendall_tau": kendall_tau(p, q), "spearman_rho": spearman_rho(p, q),
                    "pareto_jaccard": jaccard(pareto_set(rl, p), pareto_set(rl, q)),
                    "seed_tau": float(np.mean(seed_tau)) if seed_tau else None,
                    "mean_spread": float(np.mean([px[n]["spread"] for n in names])),
                    "failed_runs": sum(len(px[n]["failed"]) for n in names),
                    "seconds": sum(results[j]["seconds"] for j in jobs),
                    "default_tau_same_archs": None if None in base else kendall_tau(base, q)}
    ref_jobs = [j for j in results if j.level == "reference"]
    full = [r for r in rows if r["reference_seeds"] is not None]
    reference = {"seconds": sum(results[j]["seconds"] for j in ref_jobs), "runs": len(ref_jobs),
                 "seed_tau": None, "mean_spread": None}
    if reference_seeds > 1 and len(full) >= 3:
        reference["seed_tau"] = kendall_tau([r["reference_seeds"][0] for r in full],
                                            [r["reference_seeds"][1] for r in full])
        reference["mean_spread"] = float(np.mean([np.ptp(r["reference_seeds"]) for r in full]))
    return {"rows": rows, "variants": stats, "reference": reference}


def _pct(a: float | None) -> str:
    return "   -  " if a is None else f"{100 * a:6.2f}"


def _fmt(x: float | None, spec: str = "+.3f") -> str:
    return "  -   " if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _cell(p: dict | None) -> str:
    if p is None:
        return f"{'-':>13s}"
    return f"{_pct(p['mean'])}±{50 * p['spread']:5.2f}{'!' if p['failed'] else ' '}"


def print_tables(summary: dict, variants: Sequence[str], out=sys.stdout) -> None:
    """The per-architecture table (accuracies in %) and the per-variant statistics."""
    print(f"{'architecture':18s} {'ReLUs':>8s} {'MMACs':>7s} {'ref %':>6s} " + " ".join(f"{v:>13s}" for v in variants),
          file=out)
    for r in sorted(summary["rows"], key=lambda r: r["relus"]):
        cells = " ".join(_cell(r["proxy"].get(v)) for v in variants)
        print(f"{r['arch']:18s} {r['relus']:8d} {r['macs'] / 1e6:7.1f} {_pct(r['reference'])} {cells}", file=out)
    print("(proxy: mean over seeds ± half the seed range, in %; ! = a run diverged or failed, counted as 0)\n",
          file=out)
    print(f"{'variant':16s} {'n':>3s} {'tau':>7s} {'rho':>7s} {'pareto J':>8s} {'seed tau':>8s} {'range%':>7s} "
          f"{'failed':>6s} {'train s':>8s} {'default tau, same archs':>23s}", file=out)
    for v in variants:
        s = summary["variants"].get(v)
        if s is None:
            print(f"{v:16s}   (not run or fewer than 3 architectures finished)", file=out)
            continue
        print(f"{v:16s} {s['n']:3d} {_fmt(s['kendall_tau']):>7s} {_fmt(s['spearman_rho']):>7s} "
              f"{s['pareto_jaccard']:8.2f} {_fmt(s['seed_tau']):>8s} {100 * s['mean_spread']:7.2f} "
              f"{s['failed_runs']:6d} {s['seconds']:8.1f} {_fmt(s['default_tau_same_archs']):>23s}", file=out)
    print("(tau, rho: proxy mean vs reference; pareto J: Jaccard of the accuracy-vs-ReLU Pareto sets; "
          "seed tau: proxy seed vs seed; range%: mean max-min over seeds)", file=out)
    ref = summary["reference"]
    print(f"reference: {ref['runs']} runs, {ref['seconds']:.1f} s of training; seed tau {_fmt(ref['seed_tau'])}, "
          f"mean seed spread {_pct(ref['mean_spread'])}%", file=out)


# --- main ----------------------------------------------------------------------------------------------------

def _fidelity_overrides(items: Sequence[str]) -> dict:
    """``key=value`` pairs (values parsed as JSON when possible: 5, 0.1, null, true) for Fidelity fields."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"expected key=value, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-root", default=None, help="dataset folder (default: the loader's own places)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--scale", choices=SCALES, default="full", help="sizes, architectures and variants (SCALES)")
    p.add_argument("--quick", action="store_const", dest="scale", const="quick", help="--scale quick")
    p.add_argument("--variants", nargs="+", default=None, help=f"proxy variants (default: the scale's): "
                   f"{', '.join(VARIANTS)}")
    p.add_argument("--archs", nargs="+", default=None, help=f"architectures (default: the scale's): {', '.join(ARCHS)}")
    p.add_argument("--seeds", type=int, default=2, help="proxy seeds per variant")
    p.add_argument("--reference-seeds", type=int, default=1)
    p.add_argument("--proxy", nargs="*", default=[], metavar="KEY=VALUE", help="proxy Fidelity fields to override")
    p.add_argument("--reference", nargs="*", default=[], metavar="KEY=VALUE", help="reference Fidelity overrides")
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    p.add_argument("--eval-batch", type=int, default=None, help="evaluation batch size (default: Fidelity's)")
    p.add_argument("--time-limit", type=float, default=math.inf, help="seconds; then report what finished")
    p.add_argument("--val-subset", type=int, default=None, help="validation images kept (default: the scale's)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--resume", default=None, help="an earlier --out JSON of the same dataset and scale: its runs "
                   "are reused where they train the same thing")
    args = p.parse_args(argv)
    for name, known in (("variants", VARIANTS), ("archs", ARCHS)):
        bad = [x for x in getattr(args, name) or () if x not in known]
        if bad:
            p.error(f"--{name}: unknown {', '.join(bad)} (known: {', '.join(known)})")
    return args


RESUME_MATCH = ("dataset", "resolution", "divisor", "n_train", "n_val", "device")  # header fields a resume keeps


def previous_runs(path: str, header: dict) -> dict[str, dict]:
    """Results by :func:`run_key` from the ``--out`` JSON at ``path``, which must match ``header`` on
    ``RESUME_MATCH``."""
    with open(path) as fh:
        old = json.load(fh)
    for k in RESUME_MATCH:
        if old.get(k) != header[k]:
            raise SystemExit(f"--resume {path}: {k} is {old.get(k)!r} there, {header[k]!r} here")
    return {d["key"]: d["result"] for d in old.get("done", [])}


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    preset, scale = PRESETS.get(args.dataset, DEFAULT_PRESET), SCALES[args.scale]
    resolution = args.resolution or scale["resolution"]
    val_subset = scale["val_subset"] if args.val_subset is None else args.val_subset
    names = args.archs or list(scale["archs"])
    variants = args.variants or list(scale["variants"])
    if "default" not in variants:
        variants = ["default", *variants]
    eval_batch = {} if args.eval_batch is None else {"eval_batch_size": args.eval_batch}
    proxy = Fidelity(**{**preset["proxy"], **scale["proxy"], **eval_batch, **_fidelity_overrides(args.proxy)})
    reference = Fidelity(**{**preset["reference"], **scale["reference"], **eval_batch,
                            **_fidelity_overrides(args.reference)})
    data_kwargs = {"name": args.dataset, "root": args.data_root, "resolution": resolution,
                   "val_fraction": preset["val_fraction"]}
    data = load_dataset(**data_kwargs)
    n_train, n_val = len(data.train), min(len(data.val), val_subset or len(data.val))
    del data
    ratio = training_images(reference, n_train) / training_images(proxy, n_train)
    specs = architectures(names, resolution, scale["divisor"])
    work = plan(specs, proxy, reference, variants, args.seeds, args.reference_seeds, n_train)
    runs, sharers = distinct(work, args.device)
    keys = {job: run_key(job, spec, phases, args.device) for job, spec, phases in runs}
    log = sys.stderr
    print(f"{args.dataset}: {n_train} train / {n_val} val images at {resolution}², {len(specs)} architectures, "
          f"{len(work)} jobs in {len(runs)} distinct runs on {args.device} ({args.workers} worker(s)); "
          f"reference/proxy training images = {ratio:.1f}×{'' if ratio >= MIN_RATIO else f' (below {MIN_RATIO}×!)'}",
          file=log)
    results: dict[Job, dict] = {}
    done: list[dict] = []
    header = {"dataset": args.dataset, "scale": args.scale, "resolution": resolution, "divisor": scale["divisor"],
              "n_train": n_train, "n_val": n_val, "device": args.device, "workers": args.workers,
              "torch": torch.__version__, "proxy": proxy.model_dump(), "reference_fidelity": reference.model_dump(),
              "image_ratio": ratio, "seeds": args.seeds, "reference_seeds": args.reference_seeds,
              "quick": args.scale == "quick", "runs": len(work), "distinct_runs": len(runs)}

    def report() -> dict:
        out = {**header, "wall_seconds": time.perf_counter() - start, "unfinished": len(work) - len(results),
               **summarize(results, specs, variants, args.seeds, args.reference_seeds), "done": done}
        if args.out:
            with open(args.out, "w") as fh:
                json.dump(out, fh, indent=1)
        return out

    def on_result(job: Job, r: dict, how: str = "") -> None:
        results.update((j, r) for j in sharers[job])
        done.append({"key": keys[job], "result": r})
        shared = "" if len(sharers[job]) == 1 else f" (= {', '.join(j.level for j in sharers[job][1:])})"
        note = "" if r["status"] == "ok" else f"  {r['status']}: {r['reason']}"
        print(f"[{time.perf_counter() - start:7.1f} s] {job.arch:18s} {job.level:15s} seed {job.seed}: "
              f"{_pct(r['accuracy'])}% in {r['seconds']:.1f} s{how}{shared}{note}", file=log, flush=True)
        report()  # partial JSON: survives an outer timeout

    previous = previous_runs(args.resume, header) if args.resume else {}
    for job, _, _ in runs:
        if keys[job] in previous:
            on_result(job, previous[keys[job]], " (resumed)")
    todo = [w for w in runs if w[0] not in results]
    run_jobs(todo, (data_kwargs, args.device, args.threads, val_subset), args.workers, start + args.time_limit,
             on_result)
    out = report()
    unfinished = out["unfinished"]
    print(f"\n{args.dataset} at {resolution}², {n_train} train / {n_val} val; proxy: {proxy.epochs} epochs × "
          f"{proxy.train_subset or n_train} images, batch {proxy.batch_size}, lr {proxy.lr:g}; reference: "
          f"{reference.epochs} × {reference.train_subset or n_train}, batch {reference.batch_size} ({ratio:.1f}× "
          f"the proxy's images); {args.seeds} proxy seed(s); {args.device}, {args.workers} worker(s)")
    print_tables(out, variants)
    print(f"wall {out['wall_seconds']:.1f} s; {unfinished} of {len(work)} jobs unfinished"
          f"{' (time limit)' if unfinished else ''}", flush=True)
    return out


if __name__ == "__main__":
    main()
