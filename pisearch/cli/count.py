"""``pisearch count``: per-site ReLU / poly table and totals of a named network or a spec file, and with
``--protocol`` the estimated latency / communication under named PI protocols (``pisearch.cost.protocols``)."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from pisearch.cli.app import MAX_CLASSES, MAX_RESOLUTION, MIN_RESOLUTION, app, spec_from_arg
from pisearch.cost import NETWORKS, PROTOCOLS, Estimate, estimate, network
from pisearch.cost import count as count_cost

_PRESETS = ", ".join(f"{n.name} ({n.bandwidth_mbps:g} Mbps, RTT {n.rtt_ms:g} ms)" for n in NETWORKS.values())


@app.command()
def count(
    net_or_spec: str = typer.Argument(..., metavar="NET_OR_SPEC_JSON",
                                      help="A network name (resnet18, resnet34, resnet50, wrn22_8) or a spec JSON file."),
    resolution: int = typer.Option(None, "--resolution", "-r", min=MIN_RESOLUTION, max=MAX_RESOLUTION,
                                   help="Input side in pixels (named nets: default 32)."),
    classes: int = typer.Option(None, "--classes", "-k", min=1, max=MAX_CLASSES,
                                help="Number of classes (named nets: default 10)."),
    convention: str = typer.Option(None, "--convention", help="A: keep stem ReLU (default); B: SNL's form, without."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    protocols: list[str] = typer.Option(
        None, "--protocol", "-p",
        help=f"Add estimated latency/communication under a protocol model ({', '.join(PROTOCOLS)} or all); "
             "repeatable."),
    network_name: str = typer.Option("lan", "--network", help=f"Network preset for --protocol: {_PRESETS}."),
    bandwidth_mbps: float = typer.Option(None, "--bandwidth-mbps", min=1e-6, max=1e9,
                                         help="Override the preset's bandwidth (Mbit/s)."),
    rtt_ms: float = typer.Option(None, "--rtt-ms", min=0, max=1e7, help="Override the preset's round-trip time (ms)."),
) -> None:
    """Exact ReLU count (scalar ReLUs per image), polys, MACs and params, per activation site."""
    spec = spec_from_arg(net_or_spec, resolution, classes, convention)
    cost = count_cost(spec)
    names = list(PROTOCOLS) if "all" in (protocols or []) else list(dict.fromkeys(protocols or []))
    net = network(network_name, bandwidth_mbps, rtt_ms)
    estimates = {name: estimate(cost, name, net) for name in names}
    if as_json:
        extra = {"protocols": {n: e.to_dict() for n, e in estimates.items()}} if estimates else {}
        print(json.dumps({**cost.to_dict(), "hash": spec.hash, "spec": spec.to_obj(), **extra}))
        return
    table = Table(title=f"{net_or_spec} @ {spec.resolution}² — {spec.summary()}  [hash {spec.hash}]")
    for col in ("site", "stage", "kind", "C×H×W", "relus", "polys"):
        table.add_column(col, justify="right" if col in ("relus", "polys") else "left")
    for s in cost.sites:
        table.add_row(s.name, s.stage, s.kind, "×".join(map(str, s.shape)), f"{s.relus:,}", f"{s.polys:,}")
    console = Console()
    console.print(table)
    console.print(
        f"ReLUs {cost.relus:,} (every site of this spec) | {cost.relus_b:,} without stem/head sites "
        f"(SNL's convention B) | polys {cost.polys:,} | MACs {cost.macs:,} | params {cost.params:,}"
    )
    if estimates:
        console.print(_protocol_table(estimates))


def _protocol_table(estimates: dict[str, Estimate]) -> Table:
    net = next(iter(estimates.values())).network
    table = Table(title=f"Estimated PI cost per inference over {net.name} ({net.bandwidth_mbps:g} Mbps, RTT "
                        f"{net.rtt_ms:g} ms) — from published per-operation costs, not measurements")
    columns = ("protocol", "online s", "offline s", "online MB", "offline MB", "total MB", "ReLU % online")
    for col in columns:
        table.add_column(col, justify="left" if col == "protocol" else "right")
    for name, e in estimates.items():
        relu_share = e.parts["relu"].online_ms / e.online_ms if e.online_ms else 0.0
        table.add_row(name, f"{e.online_ms / 1e3:,.2f}", f"{e.offline_ms / 1e3:,.2f}", f"{e.online_mb:,.1f}",
                      f"{e.offline_mb:,.1f}", f"{e.comm_mb:,.1f}", f"{relu_share:.0%}")
    return table
