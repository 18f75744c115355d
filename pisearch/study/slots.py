"""The study's ``n_trials`` slots, shared by every worker and process: which trials hold one, and in what order.

A trial holds a slot unless it is a *surplus* trial (it lost the race for the last slot and was pruned untrained), a
re-drawn *duplicate* (a sampled design already measured at the same fidelity: failed untrained, so no sampler learns
from it and a new draw takes the slot), a re-drawn *over-budget* design (a sampled design whose exact ReLUs or MACs
break the budget: complete and infeasible, so samplers that read constraints learn from it, untrained, and a new
draw takes the slot), or a trial whose process died and that was re-queued (its re-run, carrying ``retry_of``, takes
its slot and its place in the order, so an interruption does not use up a trial of the study).
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from pisearch.study.store import RETRY_OF

FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
TAKEN = (*FINISHED, TrialState.RUNNING)  # trials that hold one of the study's n_trials slots
SURPLUS = "surplus"  # reason prefix of a trial that lost the race for the last slot
DUPLICATE = "duplicate design"  # reason prefix of a sampled trial that re-made a measured design and was re-drawn
OVER_BUDGET = "over budget"  # reason prefix of a sampled trial outside the budget that was re-drawn
REDRAWN = {DUPLICATE: TrialState.FAIL, OVER_BUDGET: TrialState.COMPLETE}  # re-drawn trial's reason prefix -> state


def redrawn(reason: object) -> bool:
    """Whether a trial's ``reason`` says it was re-drawn (a duplicate or an over-budget design)."""
    return str(reason).startswith(tuple(REDRAWN))


def holds_no_slot(trial: FrozenTrial) -> bool:
    """A surplus trial (pruned untrained) or a re-drawn one (a duplicate or an over-budget design, untrained): it
    gave its slot back."""
    reason = str(trial.user_attrs.get("reason", ""))
    return ((trial.state == TrialState.PRUNED and reason.startswith(SURPLUS))
            or any(trial.state == state and reason.startswith(prefix) for prefix, state in REDRAWN.items()))


def slot_holders(trials: Sequence[FrozenTrial], states: tuple[TrialState, ...]) -> list[FrozenTrial]:
    """The trials in ``states`` that hold a slot (module docstring)."""
    retried = {t.user_attrs[RETRY_OF] for t in trials if RETRY_OF in t.user_attrs}
    return [t for t in trials if t.state in states and not holds_no_slot(t) and t.number not in retried]


def count_slots(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    """Slots held by trials in ``states``: the round is complete when ``count_slots(study, FINISHED)`` reaches the
    total (counting a surplus trial there once let a worker stop while another's last trial still ran)."""
    return len(slot_holders(study.get_trials(deepcopy=False), states))


def slots_ahead(study: optuna.Study, number: int, attrs: dict) -> int:
    """Slot-holding started trials that come before trial ``number`` (user attrs ``attrs``) in slot order: a
    re-run stands where the trial it re-runs stood (chains followed), every other trial at its number."""
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}

    def place(n: int, a: dict) -> tuple[int, int]:
        origin = n
        while RETRY_OF in a and a[RETRY_OF] in by_number:
            origin = a[RETRY_OF]
            a = by_number[origin].user_attrs
        return origin, n

    mine = place(number, attrs)
    return sum(place(t.number, t.user_attrs) < mine for t in slot_holders(trials, TAKEN) if t.number != number)
