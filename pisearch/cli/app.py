"""The typer application and helpers shared by the command modules of ``pisearch.cli``.

Each command lives in its own module of this package and registers itself with ``@app.command()``;
``pisearch.cli.main`` imports them all.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from pisearch.errors import UserError
from pisearch.spec import ArchSpec, apply_convention, net

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Neural-architecture search with private-inference cost (ReLU count, protocol latency) as cost axis.",
)


def spec_from_arg(arg: str, resolution: int | None = None, classes: int | None = None,
                  convention: str | None = None) -> ArchSpec:
    """A registered network name (with resolution/classes/convention) or the path of a spec JSON file."""
    path = Path(arg)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise UserError(f"{arg}: no such spec file")
        spec = ArchSpec.from_json(path.read_text(), source=str(path))
        if resolution is not None or classes is not None:
            spec = replace(spec, resolution=resolution or spec.resolution, num_classes=classes or spec.num_classes)
        if convention is not None:
            spec = apply_convention(spec, convention)
        return spec
    return net(arg, resolution=resolution or 32, num_classes=classes or 10, convention=convention or "A")


@app.callback()
def _root() -> None:
    """pisearch: launch search studies, inspect Pareto dashboards, export the best architecture."""
