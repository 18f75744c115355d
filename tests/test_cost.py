import pytest
from hypothesis import given, settings

from pisearch.cost import count
from pisearch.models import build
from pisearch.models.verify import count_by_hooks
from pisearch.spec import net
from tests.strategies import specs

# Published ReLU counts (REFERENCES.md §1): convention A keeps the stem ReLU, B is SNL's form.
PUBLISHED = [
    ("resnet18", 32, "A", 557_056),
    ("resnet18", 64, "A", 2_228_224),
    ("resnet18", 32, "B", 491_520),
    ("resnet18", 64, "B", 1_966_080),
    ("resnet34", 32, "A", 966_656),
    ("resnet50", 32, "A", 2_940_928),
    ("wrn22_8", 32, "A", 1_392_640),
    ("wrn22_8", 32, "B", 1_359_872),
    ("wrn22_8", 64, "B", 5_439_488),
]


@pytest.mark.parametrize("name, res, conv, relus", PUBLISHED)
def test_published_relu_counts(name, res, conv, relus):
    assert count(net(name, resolution=res, convention=conv)).relus == relus


def test_resnet18_stage_split_and_macs():
    cost = count(net("resnet18"))
    assert cost.stage_relus() == {"stem": 65_536, "stage1": 262_144, "stage2": 131_072, "stage3": 65_536,
                                  "stage4": 32_768}
    assert round(cost.macs / 1e6, 1) == 555.4
    assert cost.relus_b == 491_520


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "wrn22_8"])
@pytest.mark.parametrize("res", [32, 64])
def test_named_nets_match_hooks_and_params(name, res):
    spec = net(name, resolution=res)
    model = build(spec)
    hooks = count_by_hooks(model, (3, res, res))
    cost = count(spec)
    assert (hooks.relus, hooks.polys) == (cost.relus, cost.polys)
    assert cost.params == sum(p.numel() for p in model.parameters())


@settings(max_examples=200, deadline=None)
@given(specs())
def test_random_specs_analytic_equals_hooks(spec):
    model = build(spec)
    hooks = count_by_hooks(model, (spec.in_channels, spec.resolution, spec.resolution))
    cost = count(spec)
    assert hooks.relus == cost.relus
    assert hooks.polys == cost.polys
    per_site = {s.name: (s.relus, s.polys) for s in cost.sites}
    for name, counts in hooks.per_module.items():
        assert per_site[name] == counts
    assert cost.params == sum(p.numel() for p in model.parameters())
    model.eval()
    import torch

    out = model(torch.zeros(2, spec.in_channels, spec.resolution, spec.resolution))
    assert out.shape == (2, spec.num_classes)
