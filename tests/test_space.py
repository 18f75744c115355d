import copy
import math
import re
from itertools import product
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import FixedTrial

from pisearch.cost import count
from pisearch.errors import UserError
from pisearch.space import SearchSpace
from pisearch.spec import resnet, stage_widths

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def raw(name: str) -> dict:
    return yaml.safe_load((SPACES / f"{name}.yaml").read_text())


def run_study(space: SearchSpace, sampler, n_trials: int) -> list:
    """Specs sampled by a two-objective study (ReLUs, params) with a cost-only dummy objective."""
    specs = []

    def objective(trial):
        spec = space.sample(trial, num_classes=10)
        specs.append(spec)
        cost = count(spec)
        return cost.relus, cost.params

    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    return specs, study


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_file_loads_and_samples(path):
    space = SearchSpace.load(path)
    assert space.name == path.stem
    spec = space.sample(optuna.create_study().ask(), num_classes=7)
    assert spec.resolution == space.resolution and spec.num_classes == 7
    assert space.size() >= 2
    assert SearchSpace.from_dict(space.to_dict()).to_dict() == space.to_dict()


SAMPLERS = {
    "random": lambda: optuna.samplers.RandomSampler(seed=3),
    "tpe": lambda: optuna.samplers.TPESampler(seed=3, n_startup_trials=5),
    "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=3, population_size=6),
}


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samplers_give_valid_reproducible_specs(sampler):
    space = SearchSpace.load(SPACES / "tiny.yaml")
    specs, study = run_study(space, SAMPLERS[sampler](), 18)
    again, _ = run_study(space, SAMPLERS[sampler](), 18)
    assert [s.hash for s in specs] == [s.hash for s in again]
    assert len({s.hash for s in specs}) > 5
    for spec, trial in zip(specs, study.trials):
        n = len(spec.stages)
        assert n == trial.params.get("num_stages")
        assert spec.stages[0].depth in (1, 2) and all(st.depth == 1 for st in spec.stages[1:])
        assert spec.stages[0].width == trial.params["base_width"] in (4, 8)
        assert spec.stem.width == spec.stages[0].width
        if n == 2:
            assert spec.stages[1].width == spec.stages[0].width * trial.params["ratio2"]
            assert spec.stages[1].stride == 2
        for name, act in spec.acts:  # stage granularity: every site of a stage has its stage's parameter
            stage = "stem" if name == "stem.act" else f"stage{name[5]}"
            assert act.kind == trial.params[f"act_{stage}"]


def test_parameters_keep_one_distribution_across_trials():
    space = SearchSpace.from_dict({**raw("resnet_widths"), "budget": {"max_relus": 200_000}})
    _, study = run_study(space, optuna.samplers.RandomSampler(seed=0), 30)
    seen = {}
    for trial in study.trials:
        for name, dist in trial.distributions.items():
            assert seen.setdefault(name, dist) == dist, name
    assert "base_width" not in seen and isinstance(seen["base_width_frac"], optuna.distributions.FloatDistribution)
    assert set(space.grid()) == set(seen)


def test_fixed_trial_builds_exactly_the_named_architecture():
    space = SearchSpace.load(SPACES / "tiny.yaml")
    params = {"num_stages": 2, "depth1": 2, "base_width": 8, "ratio2": 2,
              "act_stem": "relu", "act_stage1": "identity", "act_stage2": "poly"}
    spec = space.sample(FixedTrial(params), num_classes=10)
    kinds = {"stem.act": "relu", **{f"layer1.{b}.act{i}": "identity" for b in (0, 1) for i in (1, 2)},
             "layer2.0.act1": "poly", "layer2.0.act2": "poly"}
    assert spec == resnet((8, 16), (2, 1), resolution=16, acts=kinds)
    assert count(spec).relus == 8 * 16 * 16  # only the stem ReLU is left


@pytest.mark.parametrize("granularity, params", [
    ("network", ["act"]),
    ("block", ["act_layer1.0", "act_layer1.1", "act_layer2.0", "act_stem"]),
    ("site", ["act_layer1.0.act1", "act_layer1.0.act2", "act_layer1.1.act1", "act_layer1.1.act2",
              "act_layer2.0.act1", "act_layer2.0.act2", "act_stem.act"]),
])
def test_granularity_decides_the_activation_parameters(granularity, params):
    data = raw("tiny")
    data["acts"]["granularity"] = granularity
    data["stages"]["count"] = 2
    data["stages"]["depth"] = [2, 1]
    space = SearchSpace.from_dict(data)
    acts = sorted(name for name in space.grid() if name.startswith("act"))
    assert acts == params
    spec = space.sample(FixedTrial({"base_width": 4, "ratio2": 1, **{p: "poly" for p in params}}), num_classes=10)
    assert {a.kind for _, a in spec.acts} == {"poly"}


def test_convention_b_never_searches_the_stem():
    space = SearchSpace.from_dict({**raw("tiny"), "convention": "B"})
    assert "act_stem" not in space.grid()
    spec = space.sample(FixedTrial({"num_stages": 1, "depth1": 1, "base_width": 4, "act_stage1": "relu"}),
                        num_classes=10)
    assert spec.act_map["stem.act"].kind == "identity"
    assert count(spec).relus == 2 * 4 * 16 * 16


def grid_specs(space: SearchSpace) -> list:
    """The spec of every point of ``space.grid()`` (what a GridSampler study visits), via FixedTrial."""
    grid = space.grid()
    return [space.sample(FixedTrial(dict(zip(grid, values))), num_classes=10) for values in product(*grid.values())]


def test_grid_sampler_enumerates_exactly_size_distinct_specs_on_tiny():
    space = SearchSpace.load(SPACES / "tiny.yaml")
    grid = space.grid()
    hashes = set()
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    study.optimize(lambda t: hashes.add(space.sample(t, num_classes=10).hash) or 0.0)
    assert len(study.trials) == math.prod(len(v) for v in grid.values())  # the sampler stopped the study itself
    assert len(hashes) == space.size()
    # count=1: depth1 × base × 3² acts; count=2: depth1 × base × ratio2 × 3³ acts
    assert space.size() == 2 * 2 * 9 + 2 * 2 * 2 * 27


SMALL = {"resolution": 8, "widths": {"base": 2, "ratios": [1]}, "acts": {"choices": ["relu", "identity"]}}


@pytest.mark.parametrize("granularity, stages, stem, expected", [
    # block groups: stem + one per block; Σ over depth1 ∈ {1,2} and count ∈ {1,2}; × 2 blocks × 2 stem kinds
    ("block", {"count": [1, 2], "depth": [{"low": 1, "high": 2}, 1]}, ["cifar", "imagenet"],
     2 * 2 * 2 * ((2 + 4) + (2 + 4) * 2)),
    # site groups: 2 sites per basic block, 3 per bottleneck block, + the stem site
    ("site", {"count": 2, "depth": [1, 1]}, "cifar", 2 ** (1 + 2 + 2) + 2 ** (1 + 3 + 3)),
])
def test_size_counts_distinct_specs_with_block_and_stem_choices(granularity, stages, stem, expected):
    data = copy.deepcopy(SMALL)
    data["acts"]["granularity"] = granularity
    space = SearchSpace.from_dict({**data, "stem": {"kind": stem},
                                   "stages": {**stages, "block": ["basic", "bottleneck"]}})
    assert len({s.hash for s in grid_specs(space)}) == space.size() == expected


def test_budget_grid_visits_every_feasible_spec():
    space = SearchSpace.load(SPACES / "tiny.yaml")
    window = (2_000, 6_000)
    feasible = {s.hash for s in grid_specs(space) if window[0] <= count(s).relus <= window[1]}
    assert 10 < len(feasible) < space.size()
    budgeted = space.with_budget(*window)
    assert "base_width_frac" in budgeted.grid() and "base_width" not in budgeted.grid()
    assert feasible <= {s.hash for s in grid_specs(budgeted)}


def test_budget_knob_maps_fraction_onto_fitting_widths():
    data = {**raw("resnet_widths"), "budget": {"max_relus": 300_000}}
    space = SearchSpace.from_dict(data)
    params = {f"depth{i}": 2 for i in range(1, 5)} | {"ratio2": 2, "ratio3": 2, "ratio4": 2}
    params |= {f"act_{s}": "relu" for s in ("stem", "stage1", "stage2", "stage3", "stage4")}
    relus = {m: count(resnet(stage_widths(m, (2, 2, 2)), (2, 2, 2, 2))).relus for m in (16, 32, 64, 128)}
    fitting = [m for m in (16, 32, 64, 128) if relus[m] <= 300_000]
    assert fitting == [16, 32]  # ResNet18's shape has 8,704·m ReLUs: 278,528 at m = 32, 557,056 at m = 64
    picks = [space.sample(FixedTrial({**params, "base_width_frac": f}), num_classes=10).stages[0].width
             for f in (0.0, 0.49, 0.51, 1.0)]
    assert picks == [16, 16, 32, 32]
    tight = space.with_budget(max_relus=1_000)  # nothing fits: the cheapest width, left to the study to reject
    assert tight.sample(FixedTrial({**params, "base_width_frac": 0.9}), num_classes=10).stages[0].width == 16


def test_budget_sampling_is_feasible_by_construction_on_resnet_widths():
    space = SearchSpace.from_dict({**raw("resnet_widths"), "budget": {"max_relus": 300_000}})
    specs, _ = run_study(space, optuna.samplers.RandomSampler(seed=1), 200)
    relus = [count(s).relus for s in specs]
    assert sum(r <= 300_000 for r in relus) >= 0.95 * len(specs)
    assert max(max(st.width for st in s.stages) for s in specs) <= 2048  # the width cap always holds
    assert len({s.stages[0].width for s in specs}) >= 3


BAD = [
    # (change to tiny.yaml as key path -> value, or None to delete; expected key path; words of the reason)
    (("stages", "depth", 1), -1, "stages.depth[1]", "integer ≥ 1, got -1"),
    (("stages", "depth", 0), {"low": 2, "high": 1}, "stages.depth[0]", "low (2) is above high (1)"),
    (("stages", "colour"), 1, "stages.colour", "unknown key (allowed: depth, count, block)"),
    (("resolution",), "16", "resolution", "valid integer, got '16'"),
    (("widths", "base"), [], "widths.base", "empty list of choices"),
    (("widths", "base"), [4, 4], "widths.base", "duplicate"),
    (("widths", "ratios"), [[1], [2]], "widths.ratios", "one entry per stage after the first (1"),
    (("widths", "max"), 4, "widths.max", "stage width of 8"),
    (("acts", "choices"), ["relu", "gelu"], "acts.choices", "one of relu, poly, identity, got 'gelu'"),
    (("acts", "granularity"), "layer", "acts.granularity", "'network', 'stage', 'block' or 'site'"),
    (("budget",), {"min_relus": 10, "max_relus": 5}, "budget", "min_relus 10 is larger than max_relus 5"),
    (("budget",), {"max_relus": 0}, "budget.max_relus", "greater than or equal to 1"),
    (("stages", "count"), [1, 3], "stages.count", "at most 2 stages"),
    (("widths",), None, "widths", "missing required key"),
    (("stem",), "cifar", "stem", "expected a mapping"),
]


@pytest.mark.parametrize("key, value, path, reason", BAD, ids=[b[2] + ":" + b[3][:12] for b in BAD])
def test_bad_file_names_file_key_and_reason(tmp_path, key, value, path, reason):
    data = copy.deepcopy(raw("tiny"))
    parent = data
    for k in key[:-1]:
        parent = parent[k]
    if value is None:
        del parent[key[-1]]
    else:
        parent[key[-1]] = value
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError) as err:
        SearchSpace.load(file)
    assert str(err.value).startswith(f"{file}: {path}: ")
    assert reason in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, reason", [
    ("widths: [1, 2\nstages: 3\n", "not valid YAML: expected ',' or ']'"),
    ("", "expected a mapping of keys, got an empty file"),
    ("- 1\n- 2\n", "expected a mapping of keys, got list"),
])
def test_unparseable_files(tmp_path, text, reason):
    file = tmp_path / "broken.yaml"
    file.write_text(text)
    with pytest.raises(UserError, match=f"^{re.escape(str(file))}: \\(.*{re.escape(reason)}"):
        SearchSpace.load(file)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="nothere.yaml: \\(file\\): cannot read it"):
        SearchSpace.load(tmp_path / "nothere.yaml")


def test_with_budget_intersects_windows_without_reparsing():
    space = SearchSpace.from_dict({**raw("resnet_widths"), "budget": {"min_relus": 50_000, "max_relus": 300_000}})
    narrowed = space.with_budget(max_relus=200_000)
    assert narrowed.budget == (50_000, 200_000) and space.budget == (50_000, 300_000)
    assert narrowed.config.widths == space.config.widths
    with pytest.raises(UserError, match=r"budget: the window \[400000, None\] asked for and the space's \[50000, "
                                        r"300000\] do not overlap"):
        space.with_budget(min_relus=400_000)
