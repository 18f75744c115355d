"""``pisearch count``: per-site ReLU / poly table and totals of a named network or a spec file."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from pisearch.cli.app import app, spec_from_arg
from pisearch.cost import count as count_cost


@app.command()
def count(
    net_or_spec: str = typer.Argument(..., metavar="NET_OR_SPEC_JSON",
                                      help="A network name (resnet18, resnet34, resnet50, wrn22_8) or a spec JSON file."),
    resolution: int = typer.Option(None, "--resolution", "-r", help="Input side in pixels (named nets: default 32)."),
    classes: int = typer.Option(None, "--classes", "-k", help="Number of classes (named nets: default 10)."),
    convention: str = typer.Option(None, "--convention", help="A: keep stem ReLU (default); B: SNL's form, without."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Exact ReLU count (scalar ReLUs per image), polys, MACs and params, per activation site."""
    spec = spec_from_arg(net_or_spec, resolution, classes, convention)
    cost = count_cost(spec)
    if as_json:
        print(json.dumps({**cost.to_dict(), "hash": spec.hash, "spec": spec.to_obj()}))
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
