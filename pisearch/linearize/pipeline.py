"""``linearize``: one method applied to a trained network — check the budget, search, make the masks exact,
build the masked spec's model, finetune it with KD, report.

ReLU counts are :func:`pisearch.cost.count` ``relus``: the exact count of every activation site of the spec,
scalar ReLU evaluations per single-image inference. Accuracies are top-1 in [0, 1].
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from pisearch.cost import count
from pisearch.data import Splits
from pisearch.errors import UserError
from pisearch.linearize.base import METHODS, Job, finalize, kept_relus, maskable_sites
from pisearch.linearize.distill import Trainer
from pisearch.linearize.settings import LinearizeSettings
from pisearch.models import build
from pisearch.spec import ArchSpec


def check_budget(budget: int, relus: int) -> None:
    """A budget must be a whole number of ReLUs from 0 to below the network's current count."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise UserError(f"--budget: expected a number of ReLUs ≥ 0, got {budget!r}")
    if budget >= relus:
        raise UserError(f"--budget {budget:,}: the network already has only {relus:,} ReLUs (every site); "
                        f"give a smaller budget")


def finetune_steps(trainer: Trainer, settings: LinearizeSettings) -> int:
    """Steps of the final finetune: ``finetune_epochs``' worth, or (``pool_compute``) what is left of
    ``search_epochs + finetune_epochs`` of steps after the search's compute (``trainer.spent``, never below 0)."""
    steps = trainer.steps(settings.finetune_epochs)
    if not settings.pool_compute:
        return steps
    return max(0, int(trainer.steps(settings.search_epochs) + steps - trainer.spent))


def linearize(method: str, model: nn.Module, spec: ArchSpec, data: Splits, budget: int,
              settings: LinearizeSettings | Mapping | None = None, *, granularity: str = "pixel",
              teacher: nn.Module | None = None, progress: bool = False) -> tuple[ArchSpec, nn.Module, dict]:
    """Apply ``method`` (snl, autorep, cd, naive) to ``model`` (built from ``spec``, trained; not modified) so
    that at most ``budget`` ReLUs remain, per ``granularity`` unit (``pixel``: exactly ``budget``; ``channel``:
    below it by less than one channel's H×W). KD distils from ``teacher`` (default: ``model`` itself) unless
    ``settings.kd`` is off. Returns the masked spec, its finetuned model (CPU, eval mode) and a report dict with
    ``method``, ``budget``, ``granularity``, ``relus_before`` / ``relus``, validation ``accuracy_before`` /
    ``accuracy``, ``test_accuracy``, ``search_seconds``, ``finetune_seconds``, the compute (``search_steps``,
    judged ``eval_images``, ``search_compute`` and ``compute_steps`` in training steps, ``finetune_steps``) and
    the method's ``details``. ``progress``: a bar of training steps on stderr (search, then finetune) when it
    is a terminal."""
    if method not in METHODS:
        raise UserError(f"--method: unknown method {method!r} (known: {', '.join(sorted(METHODS))})")
    settings = settings if isinstance(settings, LinearizeSettings) else LinearizeSettings.model_validate(settings or {})
    relus_before = count(spec).relus
    check_budget(budget, relus_before)
    chosen = METHODS[method]
    sites = maskable_sites(spec, granularity, chosen.off)
    model = copy.deepcopy(model).to(settings.device, memory_format=torch.channels_last)
    if settings.kd:
        teacher = copy.deepcopy(model if teacher is None else teacher)
    trainer = Trainer(data, teacher if settings.kd else None, settings)
    accuracy_before = trainer.accuracy(model)
    with tqdm(total=trainer.steps(settings.search_epochs) + trainer.steps(settings.finetune_epochs), unit="step",
              desc=f"{method} search", disable=None if progress else True, leave=False) as bar:
        trainer.on_step = bar.update
        start = time.perf_counter()
        selection = chosen.search(Job(model, spec, sites, budget, trainer))
        search_seconds = time.perf_counter() - start
        relus = kept_relus(selection.keeps, sites)
        granule = max((s.granule for s in sites), default=1)
        if not budget - granule < relus <= budget or (granularity == "pixel" and relus != budget):
            raise AssertionError(f"{method} kept {relus} ReLUs for budget {budget} (granule {granule})")
        new_spec, new_model = finalize(spec, selection, sites, chosen.off)
        if count(new_spec).relus != relus:
            raise AssertionError(f"{method}: the masked spec counts {count(new_spec).relus} ReLUs, "
                                 f"the selection {relus}")

        new_model.to(settings.device, memory_format=torch.channels_last)
        accuracy_selected = trainer.accuracy(new_model, recalibrate=True)
        search_steps, search_compute = trainer.steps_run, trainer.spent
        steps = finetune_steps(trainer, settings)
        bar.total = bar.n + steps
        bar.set_description_str(f"{method} finetune")
        start = time.perf_counter()
        trainer.finetune(new_model, steps)
        finetune_seconds = time.perf_counter() - start
        accuracy = trainer.accuracy(new_model, recalibrate=True)
        report = {
            "method": method, "budget": budget, "granularity": granularity, "relus_before": relus_before,
            "relus": relus, "accuracy_before": accuracy_before, "accuracy_before_finetune": accuracy_selected,
            "accuracy": accuracy, "test_accuracy": trainer.accuracy(new_model, "test"),
            "search_seconds": round(search_seconds, 3), "finetune_seconds": round(finetune_seconds, 3),
            "search_steps": search_steps, "eval_images": trainer.eval_images,
            "search_compute": round(search_compute, 1), "finetune_steps": steps,
            "compute_steps": round(search_compute + steps, 1), "kd": settings.kd, "details": selection.details,
        }
    return new_spec, new_model.cpu().eval(), report


def linearize_spec_and_weights(method: str, spec: ArchSpec, state_dict: Mapping[str, torch.Tensor], splits: Splits,
                               budget: int, settings: LinearizeSettings | Mapping | None = None, *,
                               granularity: str = "pixel") -> tuple[ArchSpec, nn.Module, dict]:
    """:func:`linearize` for a study trial: build ``spec``, load its trained ``state_dict``, linearize."""
    model = build(spec)
    model.load_state_dict(state_dict)
    return linearize(method, model, spec, splits, budget, settings, granularity=granularity)
