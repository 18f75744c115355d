"""``pisearch worker``: join a study stored on a shared storage (PostgreSQL for many machines) and run its trials."""

from __future__ import annotations

from pathlib import Path

import typer

from pisearch.cli.app import MAX_TIMEOUT_S, MAX_TRIALS, MAX_WORKER_ID, MIN_TIMEOUT_S, app, default_worker_id
from pisearch.errors import UserError
from pisearch.study import StudyBusy, display_url, load_stored_study, run_study, state_summary


@app.command()
def worker(
    storage: str = typer.Option(..., "--storage", help="Storage URL of the study, e.g. "
                                "postgresql+psycopg://USER:PASSWORD@HOST/DB (see docs/parallel.md)."),
    study: str = typer.Option(..., "--study", help="Study name (the study file's name:)."),
    n_trials: int = typer.Option(None, "--n-trials", "-n", min=1, max=MAX_TRIALS,
                                 help="Total trials the study should hold (default: as stored by run/create)."),
    worker_id: int = typer.Option(None, "--worker-id", min=0, max=MAX_WORKER_ID,
                                  help="Seeds this worker's sampler (default: from host name and process id)."),
    timeout: float = typer.Option(None, "--timeout", min=MIN_TIMEOUT_S, max=MAX_TIMEOUT_S,
                                  help="Stop starting new trials after this many seconds."),
    out: Path = typer.Option(None, "--out", "-o", file_okay=False,
                             help="Folder for trials.csv etc. (default runs/<study>)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Run trials of a stored study until it holds its total: its config and search space come from the
    storage, so any number of workers on any machines can join with the same command."""
    config, space, total = load_stored_study(storage, study)
    wid = default_worker_id() if worker_id is None else worker_id
    try:
        result = run_study(config, space, n_trials=total if n_trials is None else n_trials, timeout_s=timeout,
                           storage=storage, out_dir=out, progress=progress, worker_id=wid)
    except StudyBusy as busy:
        raise UserError(f"{busy.what}; --worker-id 0 is the id of the command that starts a study's run: leave "
                        "--worker-id out or give another") from None
    print(f"worker {wid}: study {study!r} on {display_url(storage)}: {state_summary(result.trials)} "
          f"— {result.wall_seconds:.0f} s — {result.out_dir}/")
