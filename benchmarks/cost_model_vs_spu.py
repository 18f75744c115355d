"""The cost model against a real MPC engine (issue 29): pisearch's protocol estimates next to what SecretFlow SPU
measures for the same networks, per protocol (Cheetah, SEMI2K, ABY3).

Specs: 24 designs of the quickstart space (search_spaces/quickstart.yaml), 12 at its 16² and 12 drawn from the same
space at 32², each with one activation pattern — every site ReLU, every site a polynomial, the space's own draw
(mixed), or the draw with its polynomials made identities (identity-heavy) — and the widths the space draws (narrow
to wide). Weights are random (``build(spec)``): what an inference costs does not depend on their values. Each spec
runs once per protocol after a warm-up pass (``pisearch.mpc.run_network``), per layer, and the raw figures are kept
in ``results/cost_model_vs_spu.json`` (resumable: specs already there are not run again).

Compared per protocol, over the specs: the bytes (online + offline estimate vs party 0's sent + received) and the
online latency on the ``lan`` and ``wan`` presets (estimate vs ``pisearch.mpc.latency_ms`` of the measured figures,
with SPU's CPU seconds as compute: on a shared machine its wall time follows the load): the ratio estimate /
measured per spec, Kendall τ-b between the two rankings, and the pairs they order differently. Estimates come from pisearch's paper-anchored models (delphi, sci, cheetah) and
from the SPU models (spu_cheetah, spu_semi2k, spu_aby3) whose constants ``--fit`` refits from the per-layer figures.

    python benchmarks/cost_model_vs_spu.py               # measure what is missing (≈ 20 min on 2 cores), then compare
    python benchmarks/cost_model_vs_spu.py --fit         # also print the constants a least-squares refit gives
    python benchmarks/cost_model_vs_spu.py --specs 4     # smoke run on the first 4 specs
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from pisearch.cost import NETWORKS, count, estimate
from pisearch.cost.protocols import ElementCost, Protocol, SharedLinear
from pisearch.models import build
from pisearch.mpc import SPU_PROTOCOLS, latency_ms, layer_ops, run_network
from pisearch.report import kendall_tau_b
from pisearch.space import SearchSpace
from pisearch.spec import ArchSpec
from pisearch.train import machine_line

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "benchmarks" / "results" / "cost_model_vs_spu.json"
REPORT = ROOT / "benchmarks" / "results" / "cost_model_vs_spu.md"
PATTERNS = ("relu", "poly", "mixed", "identity")
SPECS_PER_RESOLUTION = 12
FIELDS = ("seconds", "cpu_seconds", "sent_bytes", "recv_bytes", "send_actions", "recv_actions")


def specs() -> list[tuple[str, ArchSpec]]:
    """(name, spec) of the benchmark's designs: the quickstart space at 16² and 32², four activation patterns."""
    base = SearchSpace.load(ROOT / "search_spaces" / "quickstart.yaml")
    out = []
    for resolution in (16, 32):
        space = SearchSpace.from_dict({**base.to_dict(), "resolution": resolution})
        rng = np.random.default_rng(resolution)
        for i in range(SPECS_PER_RESOLUTION):
            _, spec = space.draw(rng, num_classes=10)
            pattern = PATTERNS[i % len(PATTERNS)]
            out.append((f"{resolution}-{i:02d}-{pattern}", with_pattern(spec, pattern)))
    return out


def with_pattern(spec: ArchSpec, pattern: str) -> ArchSpec:
    """``spec`` with every site ``relu`` / ``poly``, as drawn (``mixed``) or with its polys made identities."""
    if pattern == "mixed":
        return spec
    if pattern == "identity":
        return spec.with_acts({name: "identity" for name, act in spec.acts if act.kind == "poly"})
    return spec.with_acts({s.name: pattern for s in spec.sites()})


def measure(name: str, spec: ArchSpec, protocol: str) -> dict:
    """Per-layer figures of one SPU run of ``spec`` (random weights, one image after the warm-up)."""
    ops = layer_ops(build(spec).eval())
    image = np.random.default_rng(0).standard_normal((1, spec.in_channels, spec.resolution, spec.resolution))
    start = time.perf_counter()
    run = run_network(ops, image.astype(np.float32), protocol)
    print(f"  {name} {protocol}: {time.perf_counter() - start:.1f} s", flush=True)
    return {"layers": [{"name": op.name, "kind": op.kind, **asdict(c)} for op, c in zip(ops, run.passes[0])],
            "setup": [asdict(c) for c in run.warmup], "version": run.version}


def measure_missing(chosen: list[tuple[str, ArchSpec]], protocols: list[str]) -> dict:
    """The raw results file, with every (spec, protocol) of ``chosen`` measured; written after each run."""
    raw = json.loads(RAW.read_text()) if RAW.exists() else {"machine": machine_line(), "specs": {}}
    for name, spec in chosen:
        entry = raw["specs"].setdefault(name, {"spec": spec.to_obj(), "runs": {}})
        if entry["spec"] != spec.to_obj():
            raise SystemExit(f"{RAW}: {name} holds another spec; move the file away to measure afresh")
        for protocol in protocols:
            if protocol not in entry["runs"]:
                entry["runs"][protocol] = measure(name, spec, protocol)
                entry["runs"][protocol]["date"] = time.strftime("%Y-%m-%d")
                RAW.write_text(json.dumps(raw, indent=None, separators=(",", ":")) + "\n")
    return raw


# ---- comparison ----------------------------------------------------------------------------------------------------
def totals(run: dict) -> dict:
    """Per-image figures of one measured run: the sum over its layers."""
    return {f: sum(layer[f] for layer in run["layers"]) for f in FIELDS}


def rows(raw: dict, protocol: str, model: str, clock: str = "cpu_seconds") -> list[dict]:
    """One row per spec: exact cost, measured and estimated MB and lan / wan latency (measured compute: ``clock``,
    CPU or wall seconds)."""
    out = []
    for name, entry in raw["specs"].items():
        if protocol not in entry["runs"]:
            continue
        spec = ArchSpec.from_json(entry["spec"])
        cost, measured = count(spec), totals(entry["runs"][protocol])
        measured["seconds"] = measured[clock]
        row = {"spec": name, "relus": cost.relus, "polys": cost.polys, "mmacs": cost.macs / 1e6,
               "mb": (measured["sent_bytes"] + measured["recv_bytes"]) / 1e6, "est_mb": estimate(cost, model).comm_mb}
        for net in NETWORKS:
            row[net] = latency_ms(measured, NETWORKS[net])
            row[f"est_{net}"] = estimate(cost, model, net).latency_ms
        out.append(row)
    return out


def agreement(table: list[dict]) -> dict:
    """Kendall τ-b of estimate vs measured (bytes, lan, wan) and the range of estimate / measured."""
    out = {}
    for what in ("mb", "lan", "wan"):
        est, got = np.array([r[f"est_{what}"] for r in table]), np.array([r[what] for r in table])
        out[what] = (kendall_tau_b(est, got), float((est / got).min()), float((est / got).max()))
    return out


def discordant(table: list[dict], what: str = "lan") -> list[tuple[str, str]]:
    """Pairs of specs the estimate and the measurement order differently (by ``what``)."""
    pairs = []
    for i, a in enumerate(table):
        for b in table[i + 1:]:
            if (a[f"est_{what}"] - b[f"est_{what}"]) * (a[what] - b[what]) < 0:
                pairs.append((a["spec"], b["spec"]))
    return pairs


# ---- refit ---------------------------------------------------------------------------------------------------------
def layer_table(raw: dict, protocol: str, names: list[str], clock: str) -> dict[str, list[tuple[dict, dict]]]:
    """Per kind (``relu``, ``poly``, ``linear``): (features, measured figures) of every such layer of the named specs.
    Features are the cost model's: ``elements`` of a site; ``patches`` (c_in·k²·h_out²), ``weights``, ``outputs``,
    ``macs`` of a conv / fc layer, split by output size as :class:`SharedLinear` prices compute: ``small_macs``
    (outputs of at most 2×2) and ``contraction`` (c_in·k², larger outputs)."""
    out: dict[str, list] = {"relu": [], "poly": [], "linear": []}
    for name in names:
        cost = count(ArchSpec.from_json(raw["specs"][name]["spec"]))
        sites = {s.name.replace(".", "_"): s for s in cost.sites}
        layers = {lc.layer.name.replace(".", "_"): lc for lc in cost.layers}
        for layer in raw["specs"][name]["runs"][protocol]["layers"]:
            got = {"bytes": layer["sent_bytes"] + layer["recv_bytes"], "seconds": layer[clock],
                   "rounds": layer["send_actions"]}
            if layer["kind"] in ("relu", "poly"):
                site = sites[layer["name"]]
                out[layer["kind"]].append(({"elements": site.relus + site.polys, "layer": 1}, got))
            elif layer["kind"] in ("conv", "linear"):
                lc = layers[layer["name"]]
                g = lc.layer
                small = g.h_out <= SharedLinear.small_side
                out["linear"].append(({"patches": g.c_in * g.kernel ** 2 * g.h_out ** 2, "weights": lc.params,
                                       "outputs": g.c_out * g.h_out ** 2, "layer": 1,
                                       "small_macs": lc.macs * small,
                                       "contraction": g.c_in * g.kernel ** 2 * (not small)}, got))
    return out


def nonnegative_fit(rows: list[tuple[dict, dict]], columns: tuple[str, ...], target: str) -> dict[str, float]:
    """Least squares of ``target`` on ``columns`` with non-negative coefficients (scipy's NNLS)."""
    a = np.array([[f[c] for c in columns] for f, _ in rows], float)
    coef, _ = nnls(a, np.array([g[target] for _, g in rows], float))
    return dict(zip(columns, coef.tolist()))


def fit(raw: dict, protocol: str, names: list[str], clock: str = "cpu_seconds") -> dict[str, dict[str, float]]:
    """The SPU model's constants from the per-layer figures of the named specs: per ReLU / polynomial element
    bytes and µs, µs and round trips per layer; per linear layer bytes (per layer, patch element, weight, output),
    compute (µs per layer, ns per output, ns per MAC of a small output, µs per contraction element of a larger one)
    and round trips."""
    table = layer_table(raw, protocol, names, clock)
    out = {}
    for kind in ("relu", "poly"):
        rows = table[kind]
        b = nonnegative_fit(rows, ("elements", "layer"), "bytes")
        t = nonnegative_fit(rows, ("elements", "layer"), "seconds")
        out[kind] = {"online_bytes": b["elements"], "online_us": t["elements"] * 1e6,
                     "online_layer_us": t["layer"] * 1e6,
                     "online_rounds": float(np.median([g["rounds"] for _, g in rows]))}
    rows = table["linear"]
    b = nonnegative_fit(rows, ("layer", "patches", "weights", "outputs"), "bytes")
    t = nonnegative_fit(rows, ("layer", "outputs", "small_macs", "contraction"), "seconds")
    out["linear"] = {"layer_bytes": b["layer"], "patch_bytes": b["patches"], "weight_bytes": b["weights"],
                     "output_bytes": b["outputs"], "layer_us": t["layer"] * 1e6, "ns_per_mac": t["small_macs"] * 1e9,
                     "contraction_us": t["contraction"] * 1e6, "output_ns": t["outputs"] * 1e9,
                     "rounds": float(np.median([g["rounds"] for _, g in rows]))}
    return out



# ---- report --------------------------------------------------------------------------------------------------------
PAPER_MODELS = ("cheetah", "sci", "delphi")  # pisearch's paper-anchored models: the estimates before the refit


def spu_model(protocol: str) -> str:
    """The refit SPU model of ``protocol`` (``spu_cheetah`` …)."""
    return f"spu_{protocol}"


def summary_lines(raw: dict, protocols: list[str], names: list[str]) -> list[str]:
    """Per protocol and model: τ-b and ratio range of bytes, lan and wan latency, over the named specs."""
    lines = ["| SPU protocol | estimate | τ bytes | τ lan | τ wan | bytes est/measured | lan est/measured | "
             "wan est/measured |", "| --- | --- | ---: | ---: | ---: | --- | --- | --- |"]
    for protocol in protocols:
        for model in (*PAPER_MODELS, spu_model(protocol)):
            table = [r for r in rows(raw, protocol, model) if r["spec"] in names]
            a = agreement(table)
            lines.append(f"| {protocol} | {model} | " + " | ".join(f"{a[w][0]:.2f}" for w in ("mb", "lan", "wan"))
                         + " | " + " | ".join(f"{a[w][1]:.2g}–{a[w][2]:.2g}" for w in ("mb", "lan", "wan")) + " |")
    return lines


def protocol_lines(raw: dict, protocol: str) -> list[str]:
    """One row per spec: measured bytes and latency, and estimate / measured before (cheetah) and after."""
    before, after = rows(raw, protocol, "cheetah"), rows(raw, protocol, spu_model(protocol))
    lines = [f"### {protocol}", "", "| spec | ReLUs | polys | MMACs | measured MB | lan ms | wan ms | MB ratio "
             "cheetah → refit | lan ratio | wan ratio |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"]
    for b, a in zip(before, after):
        ratios = " | ".join(f"{b[f'est_{w}'] / b[w]:.2g} → {a[f'est_{w}'] / a[w]:.2f}" for w in ("mb", "lan", "wan"))
        lines.append(f"| {a['spec']} | {a['relus']:,} | {a['polys']:,} | {a['mmacs']:.1f} | {a['mb']:,.1f} | "
                     f"{a['lan']:,.0f} | {a['wan']:,.0f} | {ratios} |")
    lan = {r["spec"]: r["lan"] for r in after}
    gaps = sorted((max(lan[x], lan[y]) / min(lan[x], lan[y]) - 1, x, y) for x, y in discordant(after, "lan"))
    total = len(after) * (len(after) - 1) // 2
    detail = (f"; their measured latencies differ by a median of {np.median([g for g, *_ in gaps]):.0%}, the widest: "
              + ", ".join(f"{x} / {y} ({g:.0%})" for g, x, y in gaps[-3:])) if gaps else ""
    lines += ["", f"After the refit the lan estimate orders {len(gaps)} of {total} pairs differently from the "
              f"measurement{detail}.", ""]
    return lines


def refit_model(raw: dict, protocol: str, names: list[str]) -> Protocol:
    """The SPU model of ``protocol`` with constants refit on the named specs (for a held-out check)."""
    f = fit(raw, protocol, names)
    return Protocol(spu_model(protocol), "refit", ElementCost(**f["relu"]), ElementCost(**f["poly"]), ElementCost(),
                    SharedLinear(**f["linear"]))


def held_out_lines(raw: dict, protocols: list[str], fit_on: list[str], test_on: list[str]) -> list[str]:
    """τ-b and ratio ranges on ``test_on`` of the SPU models refit on ``fit_on`` only."""
    lines = ["| SPU protocol | τ bytes | τ lan | τ wan | bytes est/measured | lan est/measured | wan est/measured |",
             "| --- | ---: | ---: | ---: | --- | --- | --- |"]
    for protocol in protocols:
        model = refit_model(raw, protocol, fit_on)
        a = agreement([r for r in rows(raw, protocol, model) if r["spec"] in test_on])
        lines.append(f"| {protocol} | " + " | ".join(f"{a[w][0]:.2f}" for w in ("mb", "lan", "wan")) + " | "
                     + " | ".join(f"{a[w][1]:.2g}–{a[w][2]:.2g}" for w in ("mb", "lan", "wan")) + " |")
    return lines


def fit_lines(raw: dict, protocols: list[str], names: list[str]) -> list[str]:
    """The constants a refit on the named specs gives, per protocol (to compare with pisearch/cost/protocols/spu.py)."""
    lines = []
    for protocol in protocols:
        for part, constants in fit(raw, protocol, names).items():
            lines.append(f"{protocol} {part}: " + ", ".join(f"{k}={v:.4g}" for k, v in constants.items()))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=int, default=2 * SPECS_PER_RESOLUTION, help="first N specs only")
    parser.add_argument("--protocols", nargs="+", default=list(SPU_PROTOCOLS), choices=list(SPU_PROTOCOLS))
    parser.add_argument("--fit", action="store_true", help="print the refit constants of the SPU models")
    args = parser.parse_args()
    chosen = specs()[:args.specs]
    raw = measure_missing(chosen, args.protocols)
    names = [name for name, _ in chosen]
    print(f"{len(chosen)} specs measured on {raw['machine']}")
    small, large = [n for n in names if n.startswith("16-")], [n for n in names if n.startswith("32-")]
    if args.fit:
        print("\n".join(["refit on every spec:", *fit_lines(raw, args.protocols, names),
                         "refit on the 16² specs only:", *fit_lines(raw, args.protocols, small)]))
    print("\n".join(summary_lines(raw, args.protocols, names)))
    print("\n".join(["32² specs only:", *summary_lines(raw, args.protocols, large)]))
    print("\n".join(["held out: refit on the 16² specs, compared on the 32² ones:",
                     *held_out_lines(raw, args.protocols, small, large)]))
    for protocol in args.protocols:
        print("\n".join(protocol_lines(raw, protocol)))


if __name__ == "__main__":
    main()
