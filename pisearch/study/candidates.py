"""The designs a study enqueues besides what its sampler samples: baselines (``source=rule|net``) and seeds
(``source=seed``), every one as parameters of the study's own space.

Every trial the sampler sees carries the same parameters (the space's fixed encoding), so NSGA-II crosses over
every knob and TPE models them jointly. A baseline the space cannot express (:meth:`~pisearch.space.SearchSpace.
params_of` names the knob) is still trained and compared, but *outside the space*: no params, and its trial ends
FAIL in Optuna's storage so no sampler observes it or breeds from it (trials.csv shows it measured, with
``outside_space`` saying why). A seed must be a design of the space: one that is not is refused before the storage
is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import optuna

from pisearch.errors import UserError
from pisearch.rules import deepreshape_rule
from pisearch.space import SearchSpace
from pisearch.spec import ArchSpec, net
from pisearch.study.config import StudyConfig
from pisearch.study.objective import CANDIDATE_ATTRS, holds_result
from pisearch.study.store import OUTSIDE_SPACE

NEIGHBOUR_TRIES = 20  # draws per wanted neighbour before giving up (a small space may have few distinct ones)


@dataclass(frozen=True)
class Candidate:
    """A design to enqueue: its parameters in the space's encoding and the user attrs that name it."""

    params: dict
    attrs: dict


def baselines(config: StudyConfig, space: SearchSpace, num_classes: int, in_channels: int) -> list[Candidate]:
    """DeepReShape rule points (``source=rule``, at ``baselines.deepreshape.budgets``) and named networks
    (``source=net``), with their spec JSON and parameters."""
    resolution, convention = space.resolution, space.config.convention
    found: list[tuple[str, str, str, int | None, ArchSpec]] = []
    if config.baselines.deepreshape is not None:
        for i, budget in enumerate(config.baselines.deepreshape.budgets):
            where = f"study {config.name!r}: baselines.deepreshape.budgets[{i}]"
            try:
                spec = deepreshape_rule(budget, resolution=resolution, num_classes=num_classes, convention=convention)
            except UserError as err:
                raise UserError(f"{where}: {err}") from None
            found.append((where, "rule", f"deepreshape@{budget}", budget, spec))
    for i, name in enumerate(config.baselines.nets):
        spec = net(name, resolution=resolution, num_classes=num_classes, convention=convention)
        found.append((f"study {config.name!r}: baselines.nets[{i}]", "net", name, None, spec))
    out = []
    for where, source, label, budget, spec in found:
        spec = replace(spec, in_channels=in_channels)
        attrs = {"source": source, "label": label, "spec": spec.to_json()}
        if budget is not None:
            attrs["budget"] = budget
        try:
            params = space.params_of(spec, f"{where} ({label})")
        except UserError as err:  # still trained and compared, never shown to the sampler
            params, attrs[OUTSIDE_SPACE] = {}, str(err)
        out.append(Candidate(params, attrs))
    return out


def seeds(config: StudyConfig, space: SearchSpace, found: list[Candidate], num_classes: int,
          in_channels: int) -> list[Candidate]:
    """The ``init:`` designs (``source=seed``): the rule's and named nets' designs among ``found`` baselines, the
    spec files, and ``neighbours`` mutated neighbours of each (drawn from the study seed; duplicates skipped)."""
    init = config.init
    chosen = [c for c in found
              if (init.rule and c.attrs["source"] == "rule") or (init.nets and c.attrs["source"] == "net")]
    for c in chosen:  # a seed is a parent of the search: it must be a point of the space
        if OUTSIDE_SPACE in c.attrs:
            raise UserError(f"{c.attrs[OUTSIDE_SPACE]}; as a baseline it is trained and compared, but init: seeds "
                            "must be designs of the space (set init.rule / init.nets to false, or widen the space)")
    designs = [(c.attrs["label"], c.params) for c in chosen]
    for i, text in enumerate(init.specs):
        spec = replace(ArchSpec.from_json(text, source=f"init.specs[{i}]"), in_channels=in_channels)
        designs.append((f"spec {spec.hash}", space.params_of(spec, f"study {config.name!r}: init.specs[{i}]")))
    rng = np.random.default_rng(config.seed)

    def digest(params: dict) -> str:
        return space.sample(optuna.trial.FixedTrial(params), num_classes=num_classes, in_channels=in_channels).hash

    seen = {digest(params) for _, params in designs}
    out = []
    for label, params in designs:
        made, tries = 0, 0
        while made < init.neighbours and tries < NEIGHBOUR_TRIES * init.neighbours:
            tries += 1
            near = space.neighbour(params, rng)
            if digest(near) not in seen:
                seen.add(digest(near))
                made += 1
                out.append(Candidate(near, {"source": "seed", "label": f"seed {label} ~{made}"}))
    unique = {digest(params): (label, params) for label, params in reversed(designs)}  # first of equal designs
    # the designs themselves last: a baseline of the same design has trained by then, so they reuse its result
    out += [Candidate(params, {"source": "seed", "label": f"seed {label}"}) for label, params in reversed(unique.values())]
    return out


def enqueued_trials(config: StudyConfig, space: SearchSpace, num_classes: int, in_channels: int) -> list[Candidate]:
    """Baselines, then seeds: built before the storage is touched, so a design the space cannot express (or a
    budget the rule cannot meet) leaves the storage unchanged."""
    found = baselines(config, space, num_classes, in_channels)
    return found + seeds(config, space, found, num_classes, in_channels)


def enqueue_once(study: optuna.Study, candidates: list[Candidate]) -> int:
    """Enqueue each candidate that no trial of the study holds yet (:func:`holds_result`, by the attrs that name
    a candidate): once per study, and again after a crash or Ctrl-C cut its trial short. Returns how many."""
    holding = [t.user_attrs for t in study.get_trials(deepcopy=False) if holds_result(t)]

    def held(c: Candidate) -> bool:  # by the attrs the candidate carries (a seed gets its ``spec`` when it runs)
        keys = [k for k in CANDIDATE_ATTRS if k in c.attrs]
        return any(all(a.get(k) == c.attrs[k] for k in keys) for a in holding)

    todo = [c for c in candidates if not held(c)]
    for c in todo:
        study.enqueue_trial(c.params, user_attrs=c.attrs)
    return len(todo)
