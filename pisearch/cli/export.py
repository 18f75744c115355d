"""``pisearch export``: write the export folder of one trial of a study (see ``pisearch.report.export``)."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from pisearch.cli.app import MAX_EPOCHS, MAX_RELUS, MAX_TRIALS, app
from pisearch.config import folder_lock
from pisearch.report import check_export_target, write_export, write_measured
from pisearch.study import measured_records, open_run, pick_trial, trial_model


@app.command()
def export(
    target: str = typer.Argument(..., metavar="RUN_DIR_OR_STORAGE_URL",
                                 help="Run folder (holding study.db), SQLite file or Optuna storage URL."),
    out: Path = typer.Option(..., "--out", "-o", file_okay=False,
                             help="Export folder to write (an existing export is replaced)."),
    study: str = typer.Option(None, "--study", help="Study name (needed when the storage holds several)."),
    budget: int = typer.Option(None, "--budget", min=0, max=MAX_RELUS,
                               help="Most accurate trial with at most N ReLUs (exact "
                               "count of every site, per image)."),
    trial: int = typer.Option(None, "--trial", min=0, max=MAX_TRIALS, help="This trial number."),
    min_accuracy: float = typer.Option(None, "--min-accuracy", min=0, max=1,
                                       help="Fewest ReLUs at or above this validation "
                                       "top-1 (0–1)."),
    retrain_epochs: int = typer.Option(None, "--retrain-epochs", min=1, max=MAX_EPOCHS,
                                       help="Retrain with the trial's fidelity "
                                       "for E epochs instead of using its kept weights."),
    dataset: str = typer.Option(None, "--dataset", help="Retrain on this dataset (default: the study's)."),
) -> None:
    """Export one architecture: arch.json, model.safetensors, model.onnx, MODEL_CARD.md, metrics.json."""
    check_export_target(out)
    run = open_run(target, study)
    row = pick_trial(run.trials, budget=budget, trial=trial, min_accuracy=min_accuracy)
    spec, model, metrics = trial_model(run, row, retrain_epochs=retrain_epochs, dataset=dataset, progress=True)
    command = ["pisearch", "export", run.label, "--study", run.study.study_name, "--trial", str(metrics["trial"]),
               "-o", str(out)]
    if retrain_epochs is not None:
        command += ["--retrain-epochs", str(retrain_epochs)]
    if dataset is not None:
        command += ["--dataset", dataset]
    # what the study's measure: stage measured of this trial, when the export holds the very model it ran
    same_model = retrain_epochs is None and dataset in (None, run.config.dataset.name)
    measured = measured_records(run.study.user_attrs).get(metrics["trial"]) if same_model else None
    with folder_lock(out.parent):  # two commands writing one export folder take turns: the last one's stays
        path = write_export(out, spec, model, metrics, reproduce=shlex.join(command))
        if measured is not None:
            write_measured(path, measured["protocol"], measured)
    typer.echo(f"trial {metrics['trial']} ({spec.summary()}): top-1 {metrics['accuracy']:.4f}, "
               f"{int(row['relus']):,} ReLUs (every site), {metrics['weights']} → {path}/"
               + (f" (with its SPU {measured['protocol']} measurement)" if measured is not None else ""))
