"""``pisearch run``: launch or resume a search study from a study file; one started while another command runs the
study on its file storage joins it as one more worker."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pisearch.cli.app import MAX_JOBS, MAX_TIMEOUT_S, MAX_TRIALS, MIN_TIMEOUT_S, app, default_worker_id
from pisearch.errors import UserError
from pisearch.report import bin_table
from pisearch.study import (Live, Store, StudyConfig, default_location, display_url, front_of, load_study_config,
                            relu_bins, run_folder, run_study, state_summary)


def parse_jobs(text: str | None) -> int | str | None:
    """``--jobs``: a whole number in [1, MAX_JOBS], ``auto``, or None (not given)."""
    if text is None or text == "auto":
        return text
    if not re.fullmatch(r"\s*[0-9]{1,9}\s*", text) or not 1 <= int(text) <= MAX_JOBS:
        raise UserError(f"--jobs: expected a whole number in [1, {MAX_JOBS}] or auto, got {text!r}")
    return int(text)


def joining(config: StudyConfig, storage: str | None, out: Path | None) -> tuple[Live | None, int]:
    """This command's hold on the study's file storage (kept for the whole command: :class:`Live`) and its worker
    id: 0 when it starts the study's run, else (another process runs the study there) an id of its own, printed:
    it joins as one more worker, in one process."""
    folder = run_folder(config.name, out)
    url = storage or config.storage.url
    live = Store.attach(url or default_location(folder).url)
    if live is None or not live.others:
        return live, 0
    worker_id = default_worker_id()
    typer.echo(f"{display_url(url) if url else folder}: another pisearch command is running study {config.name!r}; "
               f"this one joins it as worker {worker_id} (one process)", err=True)
    return live, worker_id


@app.command()
def run(
    study_file: Path = typer.Argument(..., metavar="STUDY.yaml", exists=True, dir_okay=False,
                                      help="Study file (see studies/)."),
    n_trials: int = typer.Option(None, "--n-trials", "-n", min=1, max=MAX_TRIALS,
                                 help="Total trials the study should hold (default: file)."),
    timeout: float = typer.Option(None, "--timeout", min=MIN_TIMEOUT_S, max=MAX_TIMEOUT_S,
                                  help="Stop starting new trials after this many seconds."),
    storage: str = typer.Option(None, "--storage", help="Optuna storage URL (default sqlite:///<out>/study.db)."),
    out: Path = typer.Option(None, "--out", "-o", file_okay=False, help="Run folder (default runs/<study name>)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    jobs: str = typer.Option(None, "--jobs", "-j", help="Worker processes on this machine sharing the study: a number, "
                             "or auto (physical cores ÷ the proxy's threads; 8 on a GPU). Default: the file's jobs, "
                             "else 1."),
) -> None:
    """Run (or resume) a study: trials.csv and pareto.csv are rewritten after every trial."""
    workers = parse_jobs(jobs)
    config, space_path = load_study_config(study_file)
    live, worker_id = joining(config, storage, out)
    result = run_study(config, space_path, n_trials=n_trials, timeout_s=timeout, storage=storage, out_dir=out,
                       progress=progress, jobs=1 if worker_id else workers, worker_id=worker_id)
    del live  # held until the study's trials are done
    df = result.trials
    console = Console()
    console.print(f"study {config.name!r}: {state_summary(df)} — {result.wall_seconds:.0f} s — {result.out_dir}/")
    bins = bin_table(df, relu_bins(result.study))
    if len(bins):
        console.print("searched trials per ReLU bin: " + " · ".join(
            f"{b.relus_low:,}–{b.relus_high:,}: {b.trials} ({b.measured} measured"
            + (f", best {b.best_accuracy:.4f})" if b.best_accuracy == b.best_accuracy else ")")
            for b in bins.itertuples()), soft_wrap=True)
    for line in result.notes:  # ReLU sensitivity of the fidelity, rank agreements (compare_notes.txt)
        console.print(line, markup=False, soft_wrap=True, style="bold red" if "warning:" in line else None)
    front = front_of(df, config.objectives)
    table = Table(title=f"Pareto front ({', '.join(config.objectives)}; ReLUs = every site of the spec)")
    for col in ("trial", "source", "accuracy", "relus", "summary"):
        table.add_column(col)
    for _, row in front.iterrows():
        table.add_row(str(row["number"]), str(row["source"]), f"{row['accuracy']:.4f}", f"{int(row['relus']):,}",
                      str(row["summary"]))
    console.print(table)
