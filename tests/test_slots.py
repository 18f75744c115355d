"""The study's n_trials slots: surplus trials and interrupted trials hold none; a re-run takes its trial's place."""

import optuna
from optuna.trial import TrialState, create_trial

from pisearch.study.slots import FINISHED, TAKEN, count_slots, slots_ahead


def complete(n: int, study: optuna.Study, **attrs) -> None:
    for _ in range(n):
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.5, 1.0], user_attrs=attrs))


def test_a_surplus_trial_does_not_complete_the_round():
    """7 complete + 1 running elsewhere + 1 surplus (pruned untrained) of 8: not finished, one slot still taken —
    a worker once stopped here and wrote a trials.csv with the other worker's trial still RUNNING."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    complete(7, study)
    study.ask()  # running elsewhere
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={"reason": "surplus: all 8 …"}))
    assert len(study.get_trials(states=FINISHED)) == 8
    assert count_slots(study, FINISHED) == 7
    assert count_slots(study, TAKEN) == 8


def test_an_interrupted_trial_gives_its_slot_and_place_to_its_rerun():
    study = optuna.create_study(directions=["maximize", "minimize"])
    complete(2, study)                                                   # 0, 1
    study.add_trial(create_trial(state=TrialState.FAIL))                 # 2: its process died, re-queued as 5
    complete(2, study)                                                   # 3, 4
    study.enqueue_trial({}, user_attrs={"retry_of": 2})                  # 5 (waiting)
    assert count_slots(study, FINISHED) == 4 and count_slots(study, TAKEN) == 4
    rerun = study.ask()
    assert rerun.number == 5 and count_slots(study, TAKEN) == 5
    assert slots_ahead(study, rerun.number, rerun.user_attrs) == 2       # trial 2's place: after 0 and 1
    late = study.ask()                                                   # 6: after 0, 1, 5 (as 2), 3, 4
    assert slots_ahead(study, late.number, late.user_attrs) == 5
    study.tell(rerun, state=TrialState.FAIL)                             # the re-run died too: re-run again as 7
    study.enqueue_trial({}, user_attrs={"retry_of": 5})
    again = study.ask()
    assert again.number == 7 and slots_ahead(study, again.number, again.user_attrs) == 2
