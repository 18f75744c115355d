"""The typer application and helpers shared by the command modules of ``pisearch.cli``.

Each command lives in its own module of this package and registers itself with ``@app.command()``;
``pisearch.cli.main`` imports them all, or only the one the command line names.
"""

from __future__ import annotations

import os
import socket
import zlib
from dataclasses import replace
from pathlib import Path

import typer

from pisearch import __version__
from pisearch.config import exists, read_json, read_text, validate
from pisearch.errors import UserError
from pisearch.spec import ArchSpec, apply_convention, net

# Upper bounds of command-line numbers (pisearch.cli.values: every number declares its range): far above any real
# use, low enough that a typo (an extra 0s, a pasted number) is refused instead of running for ever.
MIN_RESOLUTION, MAX_RESOLUTION = 8, 4096  # pixels per side (a spec needs at least 8)
MAX_CLASSES = 100_000
MAX_RELUS = 10**12  # ReLUs per image
MAX_TRIALS = 1_000_000
MAX_EPOCHS = 100_000
MAX_JOBS = 1024  # worker processes on one machine
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 1e-3, 1e9  # a timeout of 0 s would start nothing
MAX_SEED = 2**32 - 1
MAX_WORKER_ID = 65_535  # keeps every sampler seed (study seed + 10,007 × worker id) below 2**32

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
    if path.suffix == ".json" or exists(path):
        if not exists(path):
            raise UserError(f"{arg}: no such spec file")
        spec = ArchSpec.from_json(read_text(path), source=str(path))
        spec = replace(spec, resolution=spec.resolution if resolution is None else resolution,
                       num_classes=spec.num_classes if classes is None else classes)
        if convention is not None:
            spec = apply_convention(spec, convention)
        return spec
    return net(arg, resolution=32 if resolution is None else resolution, num_classes=10 if classes is None else classes,
               convention=convention or "A")


def default_worker_id() -> int:
    """A worker id in [1, MAX_WORKER_ID] from this machine's name and this process's id, so that workers started
    without ``--worker-id`` sample different points (0 is the id of the ``pisearch run`` that starts a study)."""
    return zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % MAX_WORKER_ID + 1


def _print_version(value: bool) -> None:
    if value:
        print(f"pisearch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print pisearch's version and exit.")) -> None:
    """pisearch: launch search studies, inspect Pareto dashboards, export the best architecture."""


def recorded_dataset(model_dir: Path, dataset: str | None, hint: str) -> tuple[str, dict]:
    """The dataset a command reads for an export folder: ``dataset``, else the export's (``metrics.json``:
    ``dataset``), and the recorded arguments that choose its images and split (``dataset_arguments``: a folder's
    root, the validation split, …) when it is the export's own, checked as a study file's ``dataset:`` block would
    be. ``hint``: what to do when the export records none."""
    from pisearch.study import DatasetConfig  # here: the study layer (Optuna) loads only for the commands that ask

    path = model_dir / "metrics.json"
    recorded = read_json(path) if exists(path) else {}
    name = dataset or recorded.get("dataset")
    if not name:
        raise UserError(f"{path}: no dataset recorded (key dataset); {hint}")
    given = recorded.get("dataset_arguments") if name == recorded.get("dataset") else None
    if given is None:
        return name, {}
    if not isinstance(given, dict):
        raise UserError(f"{path}: dataset_arguments: expected a mapping of dataset keys, got {type(given).__name__}")
    return name, validate(DatasetConfig, {**given, "name": name}, f"{path}: dataset_arguments").portable()
