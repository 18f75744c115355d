"""``pisearch measure``: run an export folder's network under a real two-party (or three-party) engine — SecretFlow
SPU's simulator — and write what one inference cost into ``measured.json`` and the model card (``pisearch.mpc``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pisearch.cli.app import app, recorded_dataset
from pisearch.mpc import MAX_IMAGES, SPU_PROTOCOLS, TOLERANCE, measure_export


@app.command()
def measure(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, metavar="EXPORT_DIR",
                                  help="An export folder (pisearch export): arch.json + model.safetensors."),
    protocol: str = typer.Option(..., "--protocol", "-p", help=f"SPU protocol: {', '.join(SPU_PROTOCOLS)}."),
    images: int = typer.Option(1, "--images", "-n", min=1, max=MAX_IMAGES,
                               help="Test images to run (each costs one inference; a warm-up pass comes first)."),
    random_inputs: bool = typer.Option(False, "--random-inputs",
                                       help="Standard normal images instead of the export's test split (costs do "
                                            "not depend on the input values)."),
    tolerance: float = typer.Option(TOLERANCE, "--tolerance", min=1e-9, max=1.0,
                                    help="Refuse when |SPU − PyTorch| exceeds this × the largest |logit| "
                                         "(at least 1)."),
) -> None:
    """Measure one inference of an export under an SPU protocol: time, bytes, messages per kind of operation."""
    data = None if random_inputs else recorded_dataset(
        folder, None, hint="pass --random-inputs (what an inference costs does not depend on the input values)")
    r = measure_export(folder, protocol, images, dataset=data, tolerance=tolerance)
    console = Console()
    table = Table(title=f"{folder} under SPU {r['engine']['version']} {protocol} — per single-image inference, "
                        f"party 0's view")
    for col in ("operation", "wall s", "CPU s", "sent MB", "received MB", "messages"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for kind, k in [*r["kinds"].items(), ("total", r["per_image"])]:
        table.add_row(kind, f"{k['seconds']:,.3f}", f"{k['cpu_seconds']:,.3f}", f"{k['sent_bytes'] / 1e6:,.3f}",
                      f"{k['recv_bytes'] / 1e6:,.3f}", f"{k['send_actions']:,.0f}")
    console.print(table)
    lat = r["latency_ms"]
    typer.echo(f"inputs: {r['inputs']}; max |SPU − PyTorch| {r['max_abs_error']:.3g} (largest |logit| "
               f"{r['max_abs_logit']:.3g}), same prediction on {r['same_prediction']:.0%}")
    setup = r["setup"]
    typer.echo(f"online latency: lan {lat['lan']:,.0f} ms, wan {lat['wan']:,.0f} ms (wall time + transfer + one "
               f"round trip per message); one-time setup (warm-up pass − a measured pass): "
               f"{(setup['sent_bytes'] + setup['recv_bytes']) / 1e6:,.1f} MB, {setup['seconds']:,.1f} s "
               f"→ {folder / 'measured.json'}")
