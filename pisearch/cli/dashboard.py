"""``pisearch dashboard``: the self-contained Pareto dashboard of a run, optionally the live optuna-dashboard."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import typer

from pisearch.cli.app import app
from pisearch.errors import UserError
from pisearch.study import Location, locate_existing, write_dashboard

INSTALL_HINT = "pip install optuna-dashboard"


def serve_optuna_dashboard(location: Location, port: int) -> None:
    """Run ``optuna-dashboard STORAGE`` on localhost:``port`` in the foreground until it exits or Ctrl-C (a journal
    storage is passed as its file path, the form optuna-dashboard reads)."""
    exe = shutil.which("optuna-dashboard")
    if exe is None:
        raise UserError(f"--serve: optuna-dashboard is not installed ({INSTALL_HINT}); the HTML dashboard above "
                        f"needs nothing else")
    typer.echo(f"optuna-dashboard on http://127.0.0.1:{port}/ (storage {location.label}; Ctrl-C stops it)")
    storage = str(location.path) if location.kind == "journal" else location.url
    try:
        subprocess.run([exe, storage, "--host", "127.0.0.1", "--port", str(port)], check=False)
    except KeyboardInterrupt:
        typer.echo("optuna-dashboard stopped")


@app.command()
def dashboard(
    source: str = typer.Argument(..., metavar="RUN_DIR_OR_STORAGE_URL",
                                 help="Run folder (its study.db), a .db file or an Optuna storage URL."),
    study: str = typer.Option(None, "--study", help="Study name (needed when the storage holds several)."),
    out: Path = typer.Option(None, "--out", "-o", dir_okay=False,
                             help="HTML file (default <run folder>/dashboard.html)."),
    serve: bool = typer.Option(False, "--serve", help=f"Also start the live optuna-dashboard ({INSTALL_HINT})."),
    port: int = typer.Option(8080, "--port", min=1, max=65_535, help="Port for --serve."),
) -> None:
    """Write the Pareto dashboard: one HTML file (plotly embedded, opens offline) with the accuracy-vs-ReLU front,
    hypervolume, insight views, the search-vs-rule table and the export command of every Pareto trial."""
    path = write_dashboard(source, study, out)
    typer.echo(f"dashboard: {path} (open file://{path.resolve().as_posix()})")
    if serve:
        serve_optuna_dashboard(locate_existing(source), port)
