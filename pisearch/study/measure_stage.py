"""The study file's ``measure:`` stage: run the ``top`` most accurate searched Pareto trials under a SecretFlow SPU
protocol (:func:`pisearch.mpc.measure_model`: their kept weights, or retrained at their fidelity, on the first test
images) and keep each record in the study attr ``measured:<trial number>`` (:data:`~pisearch.study.store.MEASURED`).
The trials table shows it (``measured_*`` columns), and ``pisearch export`` writes it into the export folder.

A trial already measured under the stage's protocol is not measured again, so a resumed run adds only what is new.
Run by ``pisearch run`` (not by workers), after the other stages."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import torch

from pisearch.data import Splits
from pisearch.mpc import inputs_line, measure_model, spu_modules
from pisearch.study.config import StudyConfig
from pisearch.study.records import front_of
from pisearch.study.select import Run, trial_model
from pisearch.study.store import MEASURED, measured_records
from pisearch.train import DeviceImages


def check_measure_stage(config: StudyConfig) -> None:
    """Refuse a study with a ``measure:`` stage up front (one UserError line) when SPU is not installed, rather than
    after its training."""
    if config.measure is not None:
        spu_modules()


def measure_front(study: optuna.Study, config: StudyConfig, trials: pd.DataFrame, splits: Splits,
                  run_dir: str | Path) -> int:
    """Measure the ``top`` most accurate searched Pareto trials not yet measured under the stage's protocol; returns
    how many were measured."""
    stage = config.measure
    front = front_of(trials, config.objectives)
    chosen = front[front["source"] == "search"].nlargest(stage.top, "accuracy")
    done = measured_records(study.user_attrs)
    run = Run(study, trials, config, config.name, Path(run_dir))
    images = DeviceImages(splits.test, "cpu").batch(torch.arange(min(stage.images, len(splits.test))))
    inputs = inputs_line(config.dataset.name, len(images))
    added = 0
    for _, row in chosen.iterrows():
        number = int(row["number"])
        if done.get(number, {}).get("protocol") == stage.protocol:
            continue
        spec, model, _ = trial_model(run, row)
        record = measure_model(spec, model, images, stage.protocol, inputs=inputs, source=f"trial {number}")
        study.set_user_attr(f"{MEASURED}{number}", json.dumps(record))
        added += 1
    return added
