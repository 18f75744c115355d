"""``pisearch rule``: DeepReShape's O(1) rule — the HybReNet spec for a ReLU budget, with its cost."""

from __future__ import annotations

import json

import typer
from pisearch.cli.app import MAX_CLASSES, MAX_RELUS, MAX_RESOLUTION, MIN_RESOLUTION, app
from pisearch.cost import count
from pisearch.rules import deepreshape


@app.command()
def rule(
    budget: int = typer.Option(..., "--budget", "-b", min=1, max=MAX_RELUS,
                               help="ReLU budget: scalar ReLUs per image (in --convention's count)."),
    resolution: int = typer.Option(32, "--resolution", "-r", min=MIN_RESOLUTION, max=MAX_RESOLUTION,
                                   help="Input side in pixels."),
    classes: int = typer.Option(10, "--classes", "-k", min=1, max=MAX_CLASSES, help="Number of classes."),
    convention: str = typer.Option("A", "--convention", help="A: stem ReLU kept (default); B: SNL's form, without."),
    width_multiple: int = typer.Option(8, "--width-multiple", min=1, max=1024,
                                       help="Base width m is a multiple of this."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (rule decision, cost, spec)."),
) -> None:
    """The HybReNet spec DeepReShape's rule gives for a ReLU budget (no training, no search), and its cost."""
    result = deepreshape(budget, resolution=resolution, num_classes=classes, convention=convention,
                         width_multiple=width_multiple)
    spec = result.spec
    cost = count(spec)
    if as_json:
        print(json.dumps({"rule": result.to_dict(), **cost.to_dict(tables=False), "hash": spec.hash,
                          "summary": spec.summary(), "spec": spec.to_obj()}))
        return
    print(f"{spec.summary()}  [hash {spec.hash}]")
    print(result.explain())
    stages = " | ".join(f"{name} {n:,}" for name, n in cost.stage_relus().items())
    print(f"ReLUs {cost.relus:,} (every site of this spec) | {cost.relus_b:,} without stem/head sites (SNL's "
          f"convention B) | MACs {cost.macs:,} | params {cost.params:,}\nper stage: {stages}")
