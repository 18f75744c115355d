"""``pisearch create``: put a study into a storage without running trials, for workers to join."""

from __future__ import annotations

from pathlib import Path

import typer

from pisearch.cli.app import MAX_TRIALS, app
from pisearch.errors import UserError
from pisearch.study import StudyBusy, load_study_config, prepare_study


@app.command()
def create(
    study_file: Path = typer.Argument(..., metavar="STUDY.yaml", exists=True, dir_okay=False,
                                      help="Study file (see studies/)."),
    storage: str = typer.Option(None, "--storage", help="Optuna storage URL (default: the file's, else "
                                "sqlite:///<out>/study.db)."),
    n_trials: int = typer.Option(None, "--n-trials", "-n", min=1, max=MAX_TRIALS,
                                 help="Total trials (default: the file's)."),
    out: Path = typer.Option(None, "--out", "-o", file_okay=False, help="Run folder (default runs/<study name>)."),
) -> None:
    """Create the study (checking its space, dataset and baselines) and queue its baselines; run nothing."""
    config, space_path = load_study_config(study_file)
    try:
        prep = prepare_study(config, space_path, n_trials=n_trials, storage=storage, out_dir=out)
    except StudyBusy as busy:
        raise UserError(f"{busy.what}: it exists already, nothing to create; join it with pisearch worker "
                        f"--storage '{busy.url}' --study {config.name}, or pisearch run {study_file}") from None
    waiting = len(prep.study.get_trials(deepcopy=False))
    url = prep.store.location.label
    print(f"study {config.name!r} in {url}: {prep.total} trials planned, {waiting} already stored or queued; "
          f"join with:\n  pisearch worker --storage '{url}' --study {config.name}")
