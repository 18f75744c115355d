"""``pisearch linearize``: apply SNL / AutoReP / coordinate descent / the naive baseline to an exported network
so that it has at most B ReLUs, and write the result as a new export folder (see ``pisearch.linearize``)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer

from pisearch.cli.app import MAX_EPOCHS, MAX_SEED, app, recorded_dataset
from pisearch.cost import count
from pisearch.data import load_dataset
from pisearch.config import folder_lock
from pisearch.errors import UserError
from pisearch.linearize import GRANULARITIES, METHODS, PRESETS, LinearizeSettings, check_budget
from pisearch.linearize import linearize as run_method
from pisearch.report import check_export_target, load_export, write_export


def parse_budget(text: str, relus: int) -> int:
    """``N`` ReLUs, or ``P%`` of ``relus`` (rounded down); a UserError names the flag otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*%\s*", text)
    if match:
        budget = int(float(match.group(1)) / 100 * relus)
    elif re.fullmatch(r"\s*\d+\s*", text):
        budget = int(text)
    else:
        raise UserError(f"--budget: expected a number of ReLUs or a percentage like 10%, got {text!r}")
    check_budget(budget, relus)
    return budget


@app.command()
def linearize(
    model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", exists=True, file_okay=False,
                                     help="Export folder of the trained network "
                                     "(pisearch export)."),
    out: Path = typer.Option(..., "--out", "-o", file_okay=False,
                             help="Export folder to write (an existing export is replaced)."),
    method: str = typer.Option(..., "--method", "-m", help=f"One of {', '.join(sorted(METHODS))}."),
    budget: str = typer.Option(..., "--budget", "-b", help="At most this many ReLUs (exact count of every site, "
                               "per image), or a percentage of the network's count, e.g. 10%."),
    granularity: str = typer.Option("pixel", "--granularity", help="pixel: one mask entry per activation "
                                    "(exact budget); channel: per channel (within one channel's H×W)."),
    preset: str = typer.Option("short", "--preset", help="Defaults: short (measured for short runs) or paper "
                               "(the papers' values: 200 search + 100 finetune epochs)."),
    epochs: float = typer.Option(None, "--epochs", min=0, max=MAX_EPOCHS,
                                 help="Final finetune epochs (short: 5, paper: 100); "
                                 "the search's unused compute is added (short)."),
    search_epochs: float = typer.Option(None, "--search-epochs", min=0, max=MAX_EPOCHS,
                                        help="Search-phase epochs (short: 10, "
                                        "paper: 200)."),
    dataset: str = typer.Option(None, "--dataset", help="Dataset (default: the one in MODEL_DIR/metrics.json)."),
    kd: bool = typer.Option(True, "--kd/--no-kd", help="Distil from the un-linearized network (default on)."),
    seed: int = typer.Option(None, "--seed", min=0, max=MAX_SEED,
                             help="Seed of batch order, random scores and blocks (default 0)."),
) -> None:
    """Linearize a trained network to a ReLU budget; writes arch.json, weights, ONNX, card and metrics."""
    for flag, value, known in (("--method", method, sorted(METHODS)), ("--granularity", granularity, GRANULARITIES),
                               ("--preset", preset, PRESETS)):
        if value not in known:
            raise UserError(f"{flag}: expected {', '.join(known[:-1])} or {known[-1]}, got {value!r}")
    check_export_target(out)
    spec, model = load_export(model_dir)
    relus = count(spec).relus
    b = parse_budget(budget, relus)
    options = {"preset": preset, "finetune_epochs": epochs, "search_epochs": search_epochs, "kd": kd, "seed": seed}
    settings = LinearizeSettings(**{k: v for k, v in options.items() if v is not None})
    name, given = recorded_dataset(model_dir, dataset, hint="pass --dataset NAME")
    splits = load_dataset(name, resolution=spec.resolution, channels=spec.in_channels, **given)
    if splits.train.num_classes != spec.num_classes:
        raise UserError(f"--dataset {name}: has {splits.train.num_classes} classes, the network "
                        f"{spec.num_classes}")
    new_spec, new_model, report = run_method(method, model, spec, splits, b, settings, granularity=granularity,
                                             progress=True)
    command = ["pisearch", "linearize", str(model_dir), "--method", method, "--budget", str(b), "--preset", preset,
               "--granularity", granularity, "--epochs", str(settings.finetune_epochs), "--search-epochs",
               str(settings.search_epochs), "--dataset", name, "--seed", str(settings.seed), "-o", str(out)]
    if not kd:
        command.append("--no-kd")
    metrics = {**report, "dataset": name, **({"dataset_arguments": given} if given else {}),  # linearizable again
               "source": method, "parent": str(model_dir), "parent_spec_hash": spec.hash,
               "weights": f"{method} linearization, finetuned {report['finetune_steps']} steps",
               "linearize": settings.model_dump(mode="json")}
    with folder_lock(out.parent):  # two commands writing one export folder take turns: the last one's stays
        path = write_export(out, new_spec, new_model, metrics, reproduce=shlex.join(command))
    typer.echo(f"{method} ({granularity}): {relus:,} → {report['relus']:,} ReLUs (every site, budget {b:,}); "
               f"validation top-1 {report['accuracy_before']:.4f} → {report['accuracy']:.4f} → {path}/")
