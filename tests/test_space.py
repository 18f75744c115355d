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
from pisearch.space import BudgetConfig, SearchSpace
from pisearch.spec import resnet, stage_widths

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def raw(name: str) -> dict:
    return yaml.safe_load((SPACES / f"{name}.yaml").read_text())


def two_stage() -> dict:
    """A small space whose sampling mechanics are easy to check by hand: 1–2 stages, widths 4–16, per-stage acts."""
    return {"name": "two_stage", "resolution": 16, "stem": {"kind": "cifar"},
            "widths": {"base": [4, 8], "ratios": [[1, 2]]},
            "stages": {"count": [1, 2], "depth": [{"low": 1, "high": 2}, 1], "block": "basic"},
            "acts": {"choices": ["relu", "poly", "identity"], "granularity": "stage"}}


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
    space = SearchSpace.from_dict(two_stage())
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
    space = SearchSpace.from_dict(two_stage())
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
    data = two_stage()
    data["acts"]["granularity"] = granularity
    data["stages"]["count"] = 2
    data["stages"]["depth"] = [2, 1]
    space = SearchSpace.from_dict(data)
    acts = sorted(name for name in space.grid() if name.startswith("act"))
    assert acts == params
    spec = space.sample(FixedTrial({"base_width": 4, "ratio2": 1, **{p: "poly" for p in params}}), num_classes=10)
    assert {a.kind for _, a in spec.acts} == {"poly"}


def test_convention_b_never_searches_the_stem():
    space = SearchSpace.from_dict({**two_stage(), "convention": "B"})
    assert "act_stem" not in space.grid()
    spec = space.sample(FixedTrial({"num_stages": 1, "depth1": 1, "base_width": 4, "ratio2": 1, "act_stage1": "relu",
                                    "act_stage2": "poly"}), num_classes=10)  # stage 2's knobs: present, unused
    assert spec.act_map["stem.act"].kind == "identity"
    assert count(spec).relus == 2 * 4 * 16 * 16


def grid_specs(space: SearchSpace) -> list:
    """The spec of every point of ``space.grid()`` (what a GridSampler study visits), via FixedTrial."""
    grid = space.grid()
    return [space.sample(FixedTrial(dict(zip(grid, values))), num_classes=10) for values in product(*grid.values())]


def test_grid_sampler_enumerates_exactly_size_distinct_specs():
    space = SearchSpace.from_dict(two_stage())
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
    space = SearchSpace.from_dict(two_stage())
    window = (2_000, 6_000)
    feasible = {s.hash for s in grid_specs(space) if window[0] <= count(s).relus <= window[1]}
    assert 10 < len(feasible) < space.size()
    budgeted = space.with_budget(BudgetConfig(min_relus=window[0], max_relus=window[1]))
    assert "base_width_frac" in budgeted.grid() and "base_width" not in budgeted.grid()
    assert feasible <= {s.hash for s in grid_specs(budgeted)}


def test_budget_knob_maps_fraction_onto_fitting_widths():
    data = {**raw("resnet_widths"), "budget": {"max_relus": 300_000}}
    space = SearchSpace.from_dict(data)
    params = {f"depth{i}": 2 for i in range(1, 5)} | {"ratio2": 2, "ratio3": 2, "ratio4": 2}
    params |= {"act_stem.act": "relu"} | {f"act_stage{i}.act{j}": "relu" for i in range(1, 5) for j in (1, 2)}
    bases = range(8, 129, 8)
    relus = {m: count(resnet(stage_widths(m, (2, 2, 2)), (2, 2, 2, 2))).relus for m in bases}
    fitting = [m for m in bases if relus[m] <= 300_000]
    assert fitting == [8, 16, 24, 32]  # ResNet18's shape has 8,704·m ReLUs: 278,528 at m = 32, 348,160 at m = 40
    picks = [space.sample(FixedTrial({**params, "base_width_frac": f}), num_classes=10).stages[0].width
             for f in (0.0, 0.26, 0.49, 0.51, 0.76, 1.0)]
    assert picks == [8, 16, 16, 24, 32, 32]
    tight = space.with_budget(BudgetConfig(max_relus=1_000))  # nothing fits: the cheapest width, for the study to reject
    assert tight.sample(FixedTrial({**params, "base_width_frac": 0.9}), num_classes=10).stages[0].width == 8


def test_budget_sampling_is_feasible_by_construction_on_resnet_widths():
    space = SearchSpace.from_dict({**raw("resnet_widths"), "budget": {"max_relus": 300_000}})
    specs, _ = run_study(space, optuna.samplers.RandomSampler(seed=1), 200)
    relus = [count(s).relus for s in specs]
    assert sum(r <= 300_000 for r in relus) >= 0.95 * len(specs)
    assert max(max(st.width for st in s.stages) for s in specs) <= 2048  # the width cap always holds
    assert len({s.stages[0].width for s in specs}) >= 3


BAD = [
    # (change to two_stage() as key path -> value, or None to delete; expected key path; words of the reason)
    (("stages", "depth", 1), -1, "stages.depth[1]", "integer ≥ 1, got -1"),
    (("stages", "depth", 0), {"low": 2, "high": 1}, "stages.depth[0]", "low (2) is above high (1)"),
    (("stages", "colour"), 1, "stages.colour", "unknown key (allowed: depth, count, block)"),
    (("resolution",), "16", "resolution", "valid integer, got '16'"),
    (("widths", "base"), [], "widths.base", "empty list of choices"),
    (("widths", "base"), [4, 4], "widths.base", "duplicate"),
    (("widths", "ratios"), [[1], [2]], "widths.ratios", "one entry per stage after the first (1"),
    (("widths", "max"), 4, "widths.max", "stage width of 8"),
    (("acts", "choices"), ["relu", "gelu"], "acts.choices", "one of relu, poly, identity, got 'gelu'"),
    (("acts", "granularity"), "layer", "acts.granularity", "'network', 'stage', 'position', 'block' or 'site'"),
    (("budget",), {"min_relus": 10, "max_relus": 5}, "budget", "min_relus 10 is larger than max_relus 5"),
    (("budget",), {"max_relus": 0}, "budget.max_relus", "greater than or equal to 1"),
    (("stages", "count"), [1, 3], "stages.count", "at most 2 stages"),
    (("widths",), None, "widths", "missing required key"),
    (("stem",), "cifar", "stem", "expected a mapping"),
]


@pytest.mark.parametrize("key, value, path, reason", BAD, ids=[b[2] + ":" + b[3][:12] for b in BAD])
def test_bad_file_names_file_key_and_reason(tmp_path, key, value, path, reason):
    data = two_stage()
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
    narrowed = space.with_budget(BudgetConfig(max_relus=200_000))
    assert narrowed.budget == (50_000, 200_000) and space.budget == (50_000, 300_000)
    assert narrowed.config.widths == space.config.widths
    with pytest.raises(UserError, match=r"budget: the window \[400000, None\] asked for and the space's \[50000, "
                                        r"300000\] do not overlap"):
        space.with_budget(BudgetConfig(min_relus=400_000))


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda p: p.name)
def test_params_of_inverts_sampling_on_every_shipped_space(path):
    space = SearchSpace.load(path)
    specs, study = run_study(space, optuna.samplers.RandomSampler(seed=5), 25)
    for spec, trial in zip(specs, study.trials):
        params = space.params_of(spec)
        assert set(params) == set(space.grid())  # the fixed encoding: every knob, every time
        assert space.sample(FixedTrial(params), num_classes=10).hash == spec.hash


def test_fixed_encoding_suggests_every_knob_in_every_trial():
    space = SearchSpace.load(SPACES / "tiny.yaml")  # 1, 2 or 4 stages: stage 3-4 knobs unused by most trials
    _, study = run_study(space, optuna.samplers.RandomSampler(seed=0), 20)
    assert {frozenset(t.params) for t in study.trials} == {frozenset(space.grid())}
    assert {len(t.params) for t in study.trials} == {16}


@pytest.mark.parametrize("name, budgets", [("quickstart", (3000, 6000, 12000, 20000, 40000)),
                                           ("tiny", (3000, 6000)), ("resnet_widths", (25_000, 100_000, 500_000))])
def test_the_rule_designs_are_in_the_deepreshape_spaces(name, budgets):
    from pisearch.rules import deepreshape_rule

    space = SearchSpace.load(SPACES / f"{name}.yaml")
    for budget in budgets:
        spec = deepreshape_rule(budget, resolution=space.resolution)
        assert space.sample(FixedTrial(space.params_of(spec)), num_classes=10) == spec


@pytest.mark.parametrize("spec, knob", [
    (resnet((64, 128, 256, 512), (2, 2, 2, 2), resolution=16), "base_width = 64 (choices: 4–32 step 4)"),
    (resnet((8, 16, 56, 112), (2, 2, 2, 2), resolution=16), "ratio3 = 56/16"),
    (resnet((8, 16, 32, 64), (2, 3, 2, 2), resolution=16), "depth2 = 3 (choices: 1–2 step 1)"),
    (resnet((8, 16, 32, 64), (2, 2, 2, 2), resolution=16, acts={"layer2.0.act1": "identity"}),
     "act_stage2.act1 = identity/relu within one group"),
    (resnet((8, 16, 32), (2, 2, 2), resolution=16), "num_stages = 3"),
    (resnet((8, 16, 32, 64), (2, 2, 2, 2), resolution=32), "resolution 32"),
])
def test_a_design_the_space_cannot_express_names_the_knob(spec, knob):
    space = SearchSpace.load(SPACES / "quickstart.yaml")
    with pytest.raises(UserError, match=re.escape(f"seed x: the space quickstart cannot express it: {knob}")):
        space.params_of(spec, "seed x")


def test_neighbours_move_one_knob_the_design_uses():
    import numpy as np

    space = SearchSpace.load(SPACES / "quickstart.yaml").with_budget(BudgetConfig(min_relus=2000, max_relus=40_000))
    from pisearch.rules import deepreshape_rule

    params = space.params_of(deepreshape_rule(6000, resolution=16))
    rng = np.random.default_rng(0)
    moved = [space.neighbour(params, rng) for _ in range(30)]
    for near in moved:
        changed = [k for k in params if near[k] != params[k]]
        assert len(changed) <= 1
    hashes = {space.sample(FixedTrial(p), num_classes=10).hash for p in moved}
    assert len(hashes) >= 10  # many distinct neighbours, none of them a knob the design does not use


def test_bins_split_the_window_and_sampling_aims_at_one():
    space = SearchSpace.load(SPACES / "quickstart.yaml").with_budget(
        BudgetConfig(min_relus=2000, max_relus=32_000, bins=4))
    bins = space.bins()
    assert [b[0] for b in bins] == [2000, 4000, 8000, 16000] and bins[-1][1] == 32_000  # log-spaced: ×2 each

    def landed(window) -> list[int]:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
        relus = [count(space.sample(study.ask(), num_classes=10, window=window)).relus for _ in range(30)]
        return [sum(lo <= r <= hi for r in relus) for lo, hi in bins]

    free = landed(None)  # 30 designs sampled over the whole window: how many land in each bin
    aimed = [landed(window)[i] for i, window in enumerate(bins)]  # 30 designs aimed at each bin
    assert all(a >= 2 * f for a, f in zip(aimed, free))  # the width knob steers designs into the bin asked for
    assert sum(aimed) >= 60
