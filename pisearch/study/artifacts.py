"""Trained weights of trials kept as Optuna artifacts (safetensors files in ``<run>/artifacts/``), so an export
needs no retraining. Weights are never pickled."""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact, upload_artifact
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS_ATTR = "weights_artifact_id"


def artifact_store(run_dir: str | Path) -> FileSystemArtifactStore:
    """The run folder's artifact store (created on first use)."""
    path = Path(run_dir) / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def state_tensors(model: nn.Module) -> dict:
    """The model's state dict as contiguous CPU tensors (what safetensors stores)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def store_weights(trial: optuna.Trial, model: nn.Module, run_dir: str | Path) -> str:
    """Upload ``model``'s weights as an artifact of ``trial``; records and returns the artifact id."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"trial{trial.number}.safetensors"
        save_file(state_tensors(model), str(path))
        artifact_id = upload_artifact(artifact_store=artifact_store(run_dir), file_path=str(path),
                                      study_or_trial=trial, mimetype="application/octet-stream")
    trial.set_user_attr(WEIGHTS_ATTR, artifact_id)
    return artifact_id


def fetch_weights(artifact_id: str, run_dir: str | Path) -> dict:
    """The state dict stored under ``artifact_id`` in the run folder's store."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.safetensors"
        download_artifact(artifact_store=artifact_store(run_dir), file_path=str(path), artifact_id=artifact_id)
        return load_file(str(path))
