"""Samplers a study can name (issue 28): options checked against the sampler, the cost-aware ``cost_ehvi`` sampler
(never re-proposes a measured or pending design), and sampled duplicates re-drawn instead of spending a slot.

Training is the deterministic stand-in of tests/test_search.py, so these run in seconds."""

import math

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from pisearch.cost import count
from pisearch.errors import UserError
from pisearch.space import SearchSpace
from pisearch.study import load_study_config
from pisearch.study.cost_sampler import CostAwareSampler, expected_improvement
from pisearch.study.objective import MAX_REDRAWS
from pisearch.study.samplers import SAMPLERS, build_sampler
from pisearch.study.slots import DUPLICATE
from test_search import BASE, TINY, run, trained  # noqa: F401  (a fixture)


def test_an_unknown_sampler_option_is_one_line_naming_the_file_the_key_and_the_option(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, "sampler": {"name": "tpe", "options": {"n_startup": 5}}}))
    with pytest.raises(UserError, match=r"s\.yaml: sampler: .*unknown option 'n_startup' for tpe \(TPESampler; "
                                        r"known: .*n_startup_trials") as err:
        load_study_config(path)
    assert "\n" not in str(err.value)
    path.write_text(yaml.safe_dump({**BASE, "sampler": {"name": "gp", "options": {"seed": 3}}}))
    with pytest.raises(UserError, match="'seed' is set by the study, not an option"):
        load_study_config(path)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_named_sampler_builds_with_its_options(name):
    options = {"tpe": {"n_startup_trials": 3}, "gp": {"n_startup_trials": 4}, "nsga2": {"mutation_prob": 0.1},
               "nsga3": {"crossover_prob": 0.8}, "qmc": {"qmc_type": "halton"},
               "cost_ehvi": {"pool_size": 50}}.get(name, {})
    sampler = build_sampler(name, options, seed=1, population_size=6, grid={"x": [1, 2]})
    assert isinstance(sampler, SAMPLERS[name])
    if name == "tpe":
        assert sampler._constant_liar and sampler._n_startup_trials == 3      # constant liar unless told otherwise
    with pytest.raises(ValueError, match=f"sampler {name}:"):
        build_sampler(name, {**options, "no_such_option": 1}, seed=1, population_size=6, grid={"x": [1, 2]})


def test_expected_improvement_is_the_staircase_area_when_accuracy_is_certain():
    front = np.array([[0.5, 1.0], [0.8, 2.0]])  # (accuracy, log10 cost)
    ehvi = expected_improvement(front, np.array([0.5, 1.5, 2.5]), np.array([0.9, 0.9, 0.9]), np.zeros(3), 3.0)
    # at cost 0.5: 0.9 over [0.5, 1) + 0.4 over [1, 2) + 0.1 over [2, 3); at 1.5: 0.4 × 0.5 + 0.1 × 1;
    # at 2.5: 0.1 × 0.5
    assert ehvi == pytest.approx([0.45 + 0.4 + 0.1, 0.2 + 0.1, 0.05])
    assert expected_improvement(front, np.array([1.5]), np.array([0.3]), np.array([1e-9]), 3.0)[0] == 0.0


def test_expected_improvement_matches_integration_with_a_point_below_the_reference_accuracy():
    front = np.array([[-0.08, 0.2], [0.6, 2.0]])   # a believer's prediction can fall below accuracy 0
    ehvi = expected_improvement(front, np.array([0.5]), np.array([0.4]), np.array([0.2]), 3.0)[0]
    a = np.linspace(-2, 3, 200_001)
    density = np.exp(-0.5 * ((a - 0.4) / 0.2) ** 2) / (0.2 * math.sqrt(2 * math.pi))
    # region added at accuracy a: cost [0.5, 2) above max(0, front) = 0, cost [2, 3) above 0.6
    area = 1.5 * np.clip(a, 0, None) + 1.0 * np.clip(a - 0.6, 0, None)
    assert ehvi == pytest.approx(float(np.sum(area * density) * (a[1] - a[0])), rel=1e-3)


def _study_with_measurements(space: SearchSpace, n: int) -> tuple[optuna.Study, list]:
    """An in-memory study holding ``n`` measured designs of ``space`` (accuracy grows with the ReLU count)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    rng = np.random.default_rng(0)
    designs = {}
    while len(designs) < n:
        params, spec = space.draw(rng, num_classes=10)
        designs[spec.hash] = spec
    for spec in designs.values():
        relus = count(spec).relus
        accuracy = 0.5 + 0.1 * math.log10(relus + 1)
        study.add_trial(optuna.trial.create_trial(values=[accuracy, relus], user_attrs={
            "spec": spec.to_json(), "accuracy": accuracy, "feasible": True}))
    return study, list(designs.values())


def test_cost_ehvi_never_proposes_a_measured_or_pending_design_and_a_pending_one_changes_the_next():
    space = SearchSpace.load(TINY)
    study, measured = _study_with_measurements(space, 6)
    sampler = CostAwareSampler(seed=0, pool_size=300, n_startup_trials=4)
    draw = lambda rng: space.draw(rng, num_classes=10)  # noqa: E731
    relus = lambda spec: float(count(spec).relus)  # noqa: E731

    def proposal(number: int):
        assert sampler.propose(study, number, draw, relus)
        return space.sample(optuna.trial.FixedTrial(sampler._proposals[number]), num_classes=10)

    first = proposal(100)
    assert first.hash not in {s.hash for s in measured}
    running = study.ask()                                # another worker trains `first` right now
    study._storage.set_trial_user_attr(running._trial_id, "spec", first.to_json())
    second = proposal(101)
    assert second.hash != first.hash and second.hash not in {s.hash for s in measured}
    assert study.get_trials(states=(TrialState.RUNNING,))[0].user_attrs["spec"] == first.to_json()


def test_cost_ehvi_never_proposes_a_design_that_failed_or_diverged():
    space = SearchSpace.load(TINY)
    study, measured = _study_with_measurements(space, 6)
    rng = np.random.default_rng(1)
    extra = []
    while len(extra) < 2:
        params, spec = space.draw(rng, num_classes=10)
        if spec.hash not in {s.hash for s in measured} | {s.hash for _, s in extra}:
            extra.append((params, spec))
    (_, diverged), (free_params, free) = extra
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={
        "spec": diverged.to_json(), "diverged": True}))
    pool = iter([(space.params_of(s), s) for s in measured] + extra)
    sampler = CostAwareSampler(seed=0, pool_size=len(measured) + 2, n_startup_trials=4)
    assert sampler.propose(study, 100, lambda rng: next(pool), lambda spec: float(count(spec).relus))
    assert space.sample(optuna.trial.FixedTrial(sampler._proposals[100]), num_classes=10).hash == free.hash


def test_cost_ehvi_answers_at_random_until_it_has_its_startup_observations():
    space = SearchSpace.load(TINY)
    study, _ = _study_with_measurements(space, 3)
    sampler = CostAwareSampler(seed=0, pool_size=50, n_startup_trials=4)
    assert not sampler.propose(study, 10, lambda rng: space.draw(rng, num_classes=10), lambda spec: 1.0)


def test_a_cost_ehvi_study_trains_distinct_designs(tmp_path, trained):
    result, _, _ = run(tmp_path, n_trials=12, sampler={"name": "cost_ehvi", "options": {"n_startup_trials": 4,
                                                                                          "pool_size": 200}})
    done = result.trials[result.trials["state"] == "COMPLETE"]
    assert len(done) == 12 and done["spec_hash"].is_unique


def test_a_sampled_duplicate_is_re_drawn_and_holds_no_slot(tmp_path, trained):
    space = yaml.safe_load(TINY.read_text())
    space.update(widths={"base": [4, 8], "ratios": [1, 1, 1]}, stages={"count": 1, "depth": [1, 1, 1, 1]},
                 acts={"choices": ["relu"], "granularity": "network"})    # two designs in all: m = 4 or 8
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(space))
    result, _, _ = run(tmp_path, space=str(tmp_path / "two.yaml"), n_trials=3, sampler={"name": "random"})
    t = result.trials.sort_values("number")
    redrawn = t[t["reason"].astype(str).str.startswith(DUPLICATE)]
    holders = t[~t.index.isin(redrawn.index)]
    assert set(redrawn["state"]) == {"FAIL"} and list(holders["state"]) == ["COMPLETE"] * 3
    assert holders["spec_hash"].nunique() == 2 and len(trained) == 2                # two networks trained, once each
    accepted = holders[holders["reused_from"].notna()]["number"].tolist()           # after MAX_REDRAWS in a row
    assert len(accepted) == 1 and t["number"].tolist()[-MAX_REDRAWS - 1:-1] == redrawn["number"].tolist()[-MAX_REDRAWS:]
    assert t["number"].tolist()[-1] == accepted[0]
