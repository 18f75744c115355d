"""Choose one trial of a study for export: open a run folder or storage URL read-only, pick the trial (by ReLU
budget, trial number or minimum accuracy) and get its trained model (the kept weights, or retrained).

ReLU counts here are the ``relus`` column: the exact count of every activation site of the trial's spec,
scalar ReLU evaluations per single-image inference. Accuracy is validation top-1 in [0, 1].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
import torch
from optuna.artifacts.exceptions import ArtifactNotFound
from torch import nn
from tqdm.auto import tqdm

from pisearch import __version__
from pisearch.config import validate
from pisearch.data import load_dataset, recorded_classes
from pisearch.errors import UserError
from pisearch.models import build
from pisearch.report import PROXY_TRAINED
from pisearch.spec import ArchSpec
from pisearch.study.artifacts import WEIGHTS_ATTR, fetch_weights
from pisearch.study.config import StudyConfig
from pisearch.study.objective import PRECISION_ATTR, VERSION_ATTR, WARM_EPOCHS
from pisearch.study.store import read_study
from pisearch.train import Fidelity, resolved_precision, seeded_build, train_proxy


@dataclass(frozen=True)
class Run:
    """A study opened for reading: its trials table, its stored study file, and where its artifacts live.

    ``label`` names the run in messages and reproduce commands (a storage URL's password is hidden);
    ``run_dir`` is the folder holding ``artifacts/`` (the run folder, or that of a SQLite file), or None."""

    study: optuna.Study
    trials: pd.DataFrame
    config: StudyConfig
    label: str
    run_dir: Path | None


def open_run(target: str, study_name: str | None = None) -> Run:
    """Open a run folder (``runs/<name>``, holding ``study.db``), a storage file or a storage URL without writing
    to it (:func:`~pisearch.study.store.read_study`). A missing or corrupted storage, an unknown study or a study
    not made by ``pisearch run`` raises a one-line :class:`UserError`."""
    stored = read_study(target, study_name)
    label, name = stored.location.label, stored.study.study_name
    text = stored.user_attrs.get("config")
    if text is None:
        raise UserError(f"{label}: study {name!r} has no stored study file (not made by `pisearch run`)")
    config = validate(StudyConfig, json.loads(text), f"{label} (study {name!r} config)")
    return Run(stored.study, stored.trials, config, label, stored.location.run_dir)


def eligible(trials: pd.DataFrame) -> pd.DataFrame:
    """COMPLETE, feasible, proxy-trained trials of the front (linearized trials had more training than their
    level: export them by ``--trial``); an architecture (``spec_hash``) measured at several fidelity levels
    keeps only its highest level (the first trial there)."""
    ok = trials[(trials["state"] == "COMPLETE") & (trials["feasible"] == True)  # noqa: E712
                & trials["accuracy"].notna() & trials["spec"].notna() & trials["source"].isin(PROXY_TRAINED)]
    ok = ok.assign(level=ok["level"].fillna(0).astype(int))
    return ok.sort_values(["spec_hash", "level", "number"], ascending=[True, False, True]).drop_duplicates("spec_hash")


def pick_trial(trials: pd.DataFrame, *, budget: int | None = None, trial: int | None = None,
               min_accuracy: float | None = None) -> pd.Series:
    """The trial row to export; exactly one criterion: ``budget`` (the most accurate eligible trial with at most
    that many ReLUs, fewer ReLUs breaking ties), ``min_accuracy`` (the fewest ReLUs at or above that accuracy,
    higher accuracy breaking ties) or ``trial`` (that trial number, if it was trained)."""
    if sum(x is not None for x in (budget, trial, min_accuracy)) != 1:
        raise UserError("export: give exactly one of --budget, --trial, --min-accuracy")
    if trial is not None:
        return _numbered(trials, trial)
    pool = eligible(trials)
    if pool.empty:
        raise UserError("export: the study has no COMPLETE, feasible, trained trial yet")
    if budget is not None:
        fits = pool[pool["relus"] <= budget]
        if fits.empty:
            low = pool.loc[pool["relus"].idxmin()]
            raise UserError(f"--budget {budget:,}: no trial has that few ReLUs; the smallest ReLU count available "
                            f"is {int(low['relus']):,} (trial {low['number']})")
        return fits.sort_values(["accuracy", "relus", "number"], ascending=[False, True, True]).iloc[0]
    fits = pool[pool["accuracy"] >= min_accuracy]
    if fits.empty:
        best = pool.loc[pool["accuracy"].idxmax()]
        raise UserError(f"--min-accuracy {min_accuracy}: no trial reaches it; the best accuracy available is "
                        f"{best['accuracy']:.4f} (trial {best['number']}, {int(best['relus']):,} ReLUs)")
    return fits.sort_values(["relus", "accuracy", "number"], ascending=[True, False, True]).iloc[0]


def _numbered(trials: pd.DataFrame, number: int) -> pd.Series:
    rows = trials[trials["number"] == number]
    if rows.empty:
        span = f"trials 0–{int(trials['number'].max())}" if len(trials) else "no trials"
        raise UserError(f"--trial {number}: no such trial (the study has {span})")
    row = rows.iloc[0]
    if row["state"] != "COMPLETE" or pd.isna(row["accuracy"]) or pd.isna(row["spec"]):
        why = row["reason"] if isinstance(row["reason"], str) else f"state {row['state']}"
        raise UserError(f"--trial {number}: was not trained ({why}); nothing to export")
    return row


def _series(row: pd.Series) -> str:
    """Which series the trial belongs to: the proxy front, or a linearization with its own training."""
    if row["source"] in PROXY_TRAINED:
        return "proxy front: trained by the proxy trainer at its level, like every point it was compared with"
    return (f"linearized ({row['source']} of trial {int(row['parent'])}): trained {float(row['train_seconds']):.0f} s "
            "beyond its parent's proxy training, not comparable with the proxy front")


def trial_model(run: Run, row: pd.Series, *, retrain_epochs: int | None = None, dataset: str | None = None,
                progress: bool = False) -> tuple[ArchSpec, nn.Module, dict]:
    """Rebuild the trial's spec with its kept weights, or retrain it with the trial's fidelity (``epochs``
    overridden by ``retrain_epochs``) on the study's dataset (or ``dataset``). Retraining happens when asked
    (``retrain_epochs``, another ``dataset``) or when the trial kept no weights. Returns the spec, the model
    and the metrics for :func:`pisearch.report.export.write_export`. ``progress``: a bar of the retraining's
    epochs on stderr when it is a terminal."""
    number = int(row["number"])
    spec = ArchSpec.from_json(row["spec"], source=f"{run.label}: trial {number} spec")
    fidelity = Fidelity.model_validate(json.loads(row["fidelity"]))
    name = dataset or run.config.dataset.name
    artifact = row.get(WEIGHTS_ATTR)
    if retrain_epochs is None and name == run.config.dataset.name and isinstance(artifact, str):
        model = build(spec)
        model.load_state_dict(_kept_weights(run, artifact, number))
        accuracy, weights = float(row["accuracy"]), "kept weights of the trial"
        inherited = row.get(WARM_EPOCHS)
        if pd.notna(inherited) and inherited:
            weights += f"; warm start: its first {int(inherited)} epochs were trained at the level below"
        level = None if pd.isna(row["level"]) else int(row["level"])
        precision = row.get(PRECISION_ATTR)
        precision = precision if isinstance(precision, str) else resolved_precision(fidelity, "cpu")
        trained_by = row.get(VERSION_ATTR)  # NaN for a trial of a pisearch that did not record it
    else:
        if retrain_epochs is not None:
            fidelity = fidelity.model_copy(update={"epochs": retrain_epochs})
        device = run.config.device if run.config.device == "cpu" or torch.cuda.is_available() else "cpu"
        model, accuracy = _retrain(run.config, spec, fidelity, name, device, progress, run.run_dir)
        weights, level, precision = f"retrained {fidelity.epochs} epochs", None, resolved_precision(fidelity, device)
        trained_by = __version__
    own = name == run.config.dataset.name
    classes = recorded_classes(run.run_dir) if own else []
    metrics = {"accuracy": accuracy, "dataset": name, **({"dataset_arguments": run.config.dataset.portable()} if own
                                                          else {}),
               "level": level, "fidelity": fidelity.model_dump(mode="json"),
               "precision": precision, **({"classes": classes} if classes else {}),
               **({"trained_by": trained_by} if isinstance(trained_by, str) else {}),
               "weights": weights, "study": run.study.study_name, "trial": number, "source": row["source"],
               "trial_accuracy": float(row["accuracy"]), "series": _series(row)}
    return spec, model.eval(), metrics


def _kept_weights(run: Run, artifact_id: str, number: int) -> dict:
    hint = "; pass --retrain-epochs E to retrain it instead"
    if run.run_dir is None or not (run.run_dir / "artifacts").is_dir():
        raise UserError(f"{run.label}: trial {number} kept its weights but no artifacts/ folder is here{hint}")
    try:
        return fetch_weights(artifact_id, run.run_dir)
    except (ArtifactNotFound, OSError) as err:
        raise UserError(f"{run.run_dir / 'artifacts'}: weights of trial {number} ({artifact_id}) cannot be read "
                        f"({type(err).__name__}){hint}") from None


def _retrain(config: StudyConfig, spec: ArchSpec, fidelity: Fidelity, name: str, device: str, progress: bool,
             run_dir: Path | None) -> tuple[nn.Module, float]:
    if name == config.dataset.name:  # the study's own data: every key of its dataset block, the run folder's cache
        given = {**config.dataset.arguments(), "channels": spec.in_channels, "run_dir": run_dir}
    else:
        given = {"channels": spec.in_channels, "val_fraction": config.dataset.val_fraction,
                 "split_seed": config.dataset.split_seed}
    splits = load_dataset(name, resolution=spec.resolution, **given)
    if splits.train.num_classes != spec.num_classes:
        raise UserError(f"--dataset {name}: has {splits.train.num_classes} classes, the architecture "
                        f"{spec.num_classes}")
    model = seeded_build(spec, fidelity)
    with tqdm(total=fidelity.epochs, unit="epoch", desc="retrain", disable=None if progress else True,
              leave=False) as bar:
        def shown(epoch: int, accuracy: float) -> None:
            bar.n = epoch  # set, not added: a retry at a lower learning rate starts again from epoch 1
            bar.set_postfix_str(f"val top-1 {accuracy:.3f}")

        result = train_proxy(model, splits.train, splits.val, fidelity, device=device, progress=shown)
    if result.status != "ok":
        raise UserError(f"retraining diverged: {result.reason}")
    return model.cpu(), result.accuracy
