import json
import subprocess
import sys

import numpy as np
import pytest

from pisearch.cost import count
from pisearch.errors import UserError
from pisearch.models import build
from pisearch.models.verify import count_by_hooks
from pisearch.rules import (
    CULL_SEQUENCE, HIGH_RATIOS, HIGH_REGIME_RELUS_PER_PIXEL, LOW_RATIOS, deepreshape, deepreshape_rule, rule_spec,
)
from pisearch.spec import net

BUDGETS = sorted({int(b) for b in np.geomspace(15_000, 1_000_000, 60)} | {15_000, 180_000, 557_056, 1_000_000})


# Published / REFERENCES.md §2 counts (convention A, hook-counted with torchvision BasicBlocks).
@pytest.mark.parametrize("name, res, total, stages", [
    ("hybrenet_16_553", 32, 343_040, {"stem": 16_384, "stage1": 65_536, "stage2": 81_920, "stage3": 102_400,
                                       "stage4": 76_800}),
    ("hybrenet_32_253", 32, 372_736, {"stem": 32_768, "stage1": 131_072, "stage2": 65_536, "stage3": 81_920,
                                       "stage4": 61_440}),
    ("hybrenet_16_553", 64, 1_372_160, None),
    ("hybrenet_32_253", 64, 1_490_944, None),
])
def test_hybrenet_counts_match_published(name, res, total, stages):
    cost = count(net(name, resolution=res))
    assert cost.relus == total
    if stages is not None:
        assert cost.stage_relus() == stages


def test_hybrenet_widths():
    assert [st.width for st in net("hybrenet_16_553").stages] == [16, 80, 400, 1200]
    assert [st.width for st in net("hybrenet_32_253", num_classes=100).stages] == [32, 64, 320, 960]


@pytest.mark.parametrize("convention", ["A", "B"])
def test_rule_meets_every_budget_and_is_maximal(convention):
    wm = 8
    for budget in BUDGETS:
        r = deepreshape(budget, convention=convention)
        relus = count(r.spec).relus
        assert relus == r.relus <= budget, budget
        assert r.base_width % wm == 0 and r.base_width >= wm
        # largest m in the chosen layout: one more width step overshoots
        bigger = rule_spec(r.base_width + wm, r.ratios, r.layout, convention=convention)
        assert count(bigger).relus > budget, budget
        # least culling: every earlier layout overshoots already at the smallest width
        for layout in CULL_SEQUENCE[:CULL_SEQUENCE.index(r.layout)]:
            assert count(rule_spec(wm, r.ratios, layout, convention=convention)).relus > budget, (budget, layout)


def test_rule_is_deterministic():
    for budget in (15_000, 123_456, 900_000):
        assert deepreshape_rule(budget).hash == deepreshape_rule(budget).hash


def test_regime_boundary_scales_with_resolution():
    for res in (32, 64):
        boundary = HIGH_REGIME_RELUS_PER_PIXEL * res * res
        assert deepreshape(boundary, resolution=res).ratios == HIGH_RATIOS
        assert deepreshape(boundary - 1, resolution=res).ratios == LOW_RATIOS


def test_culled_and_thinned_sites_are_identity():
    r = deepreshape(15_000)
    assert r.layout == CULL_SEQUENCE[-1]
    acts = {s.name: (s.stage, act.kind) for s, (_, act) in zip(r.spec.sites(), r.spec.acts)}
    relu_sites = {name for name, (_, kind) in acts.items() if kind == "relu"}
    assert relu_sites == {"layer3.0.act2", "layer3.1.act2"}
    # one width step of Stage 3's post-add ReLUs: 2 sites × (m·α·β) channels × 8×8
    assert r.relus == 2 * (8 * 2 * 5) * 8 * 8


def test_rule_spec_counts_agree_with_hooks():
    spec = deepreshape_rule(40_000, resolution=16, num_classes=5)
    hooks = count_by_hooks(build(spec), (3, 16, 16))
    assert hooks.relus == count(spec).relus <= 40_000


def test_resolution_and_classes_pass_through():
    spec = deepreshape_rule(2_000_000, resolution=64, num_classes=200)
    assert (spec.resolution, spec.num_classes) == (64, 200)
    assert count(spec).relus <= 2_000_000


def test_budget_below_smallest_network_names_it():
    smallest = count(rule_spec(8, LOW_RATIOS, CULL_SEQUENCE[-1])).relus
    deepreshape(smallest)  # exactly the smallest network fits
    with pytest.raises(UserError, match=f"{smallest:,} ReLUs"):
        deepreshape(smallest - 1)


@pytest.mark.parametrize("kwargs, key", [
    ({"budget": 0}, "budget"), ({"budget": -5}, "budget"), ({"budget": True}, "budget"),
    ({"budget": 1.5e5}, "budget"), ({"budget": 100_000, "width_multiple": 0}, "width_multiple"),
    ({"budget": 100_000, "convention": "C"}, "convention"), ({"budget": 100_000, "resolution": 4}, "resolution"),
])
def test_bad_inputs_raise_user_error(kwargs, key):
    with pytest.raises(UserError, match=key):
        deepreshape(**kwargs)


def run_cli(*args):
    return subprocess.run([sys.executable, "-c", "from pisearch.cli import main; main()", *args],
                          capture_output=True, text=True)


def test_cli_rule_json():
    out = run_cli("rule", "--budget", "250000", "--resolution", "32", "--classes", "100", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    expected = deepreshape(250_000, num_classes=100)
    assert data["hash"] == expected.spec.hash
    assert data["relus"] == expected.relus <= 250_000
    assert data["rule"]["base_width"] == expected.base_width and data["rule"]["ratios"] == list(expected.ratios)
    assert sum(data["stage_relus"].values()) == data["relus"]
    assert {"relus_b", "macs", "params", "spec"} <= set(data)


def test_cli_rule_text_and_bad_budget():
    out = run_cli("rule", "--budget", "100000", "--convention", "B")
    assert out.returncode == 0, out.stderr
    r = deepreshape(100_000, convention="B")
    assert f"ReLUs {r.relus:,}" in out.stdout and "per stage:" in out.stdout and "regime" in out.stdout
    bad = run_cli("rule", "--budget", "100")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "budget" in lines[0]
