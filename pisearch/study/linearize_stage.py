"""The study file's ``linearize:`` stage: apply ReLU-reduction methods (SNL, AutoReP, coordinate descent, naive)
to the most accurate searched Pareto trials and record each result as a trial tagged ``source=<method>`` in the
same study, so linearized points appear on the same front, table and dashboard.

Each (parent trial, method, budget) is done once: the study attr ``linearized:<parent>:<method>:<budget>`` holds
the trial it produced, so a resumed run does not redo it. Run by ``pisearch run`` (not by workers)."""

from __future__ import annotations

import optuna
import pandas as pd

from pisearch.data import Splits
from pisearch.linearize import linearize_spec_and_weights
from pisearch.spec import ArchSpec
from pisearch.study.artifacts import WEIGHTS_ATTR, fetch_weights, state_tensors
from pisearch.study.config import StudyConfig
from pisearch.study.objective import cost_metrics, record_spec
from pisearch.study.records import front_of
from pisearch.train import Fidelity, seeded_build, train_proxy


def stage_budget(budget: float, relus: int) -> int:
    """A budget below 1 is a fraction of the parent's ReLU count (every site); otherwise an absolute count."""
    return max(1, int(budget * relus)) if budget < 1 else int(budget)


def _weights(row: pd.Series, spec: ArchSpec, fidelity: Fidelity, splits: Splits, run_dir: str, device: str) -> dict:
    if isinstance(row.get(WEIGHTS_ATTR), str):
        return fetch_weights(row[WEIGHTS_ATTR], run_dir)
    model = seeded_build(spec, fidelity)  # deterministic: the same weights the trial had
    train_proxy(model, splits.train, splits.val, fidelity, device=device)
    return state_tensors(model)


def linearize_front(study: optuna.Study, config: StudyConfig, trials: pd.DataFrame, splits: Splits,
                    fidelity: Fidelity, run_dir: str) -> int:
    """Linearize the ``top`` most accurate searched Pareto trials with every method and budget of the stage;
    returns the number of new trials."""
    stage = config.linearize
    front = front_of(trials, config.objectives)
    parents = front[(front["source"] == "search") & (front["relus"] > 0)].nlargest(stage.top, "accuracy")
    added = 0
    for _, row in parents.iterrows():
        spec = ArchSpec.from_json(row["spec"])
        weights = None
        for method in stage.methods:
            for fraction in stage.budgets:
                budget = stage_budget(fraction, int(row["relus"]))
                key = f"linearized:{int(row['number'])}:{method}:{budget}"
                if key in study.user_attrs or budget >= int(row["relus"]):
                    continue
                weights = weights or _weights(row, spec, fidelity, splits, run_dir, config.device)
                new_spec, _, report = linearize_spec_and_weights(method, spec, weights, splits, budget,
                                                                 stage.settings, granularity=stage.granularity)
                metrics = cost_metrics(new_spec, config)
                trial = study.ask()
                record_spec(trial, new_spec, method, metrics)
                attrs = {"label": f"{method}@{budget} of #{int(row['number'])}", "parent": int(row["number"]),
                         "budget": budget, "feasible": True, "level": int(row["level"]), "accuracy": report["accuracy"],
                         "train_seconds": report["search_seconds"] + report["finetune_seconds"]}
                for k, v in attrs.items():
                    trial.set_user_attr(k, v)
                study.tell(trial, [report["accuracy"] if o == "accuracy" else metrics[o] for o in config.objectives])
                study.set_user_attr(key, trial.number)
                added += 1
    return added
