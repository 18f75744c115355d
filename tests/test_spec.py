import json

import numpy as np
import pytest
from hypothesis import given, settings

from pisearch.errors import SpecError
from pisearch.spec import Act, ArchSpec, Mask, net, resnet, stage_widths
from tests.strategies import specs


@settings(max_examples=100, deadline=None)
@given(specs())
def test_json_round_trip_is_canonical(spec):
    text = spec.to_json()
    back = ArchSpec.from_json(text)
    assert back == spec
    assert back.to_json() == text
    assert back.hash == spec.hash
    assert list(json.loads(text)) == sorted(json.loads(text))


def test_hash_distinguishes_activation_choice():
    a = net("resnet18")
    b = a.with_acts({"layer1.0.act1": "identity"})
    assert a.hash != b.hash
    assert net("resnet18").hash == a.hash


def test_mask_bits_round_trip():
    keep = np.random.default_rng(0).random((5, 3, 3)) < 0.4
    m = Mask.from_array(keep)
    assert (m.to_array() == keep).all()
    assert m.kept == keep.sum()
    assert m.granularity == "pixel"


def test_sites_follow_module_layout():
    names = [s.name for s in net("resnet18").sites()]
    assert names[0] == "stem.act" and names[-1] == "layer4.1.act2" and len(names) == 17
    assert [s.name for s in net("wrn22_8").sites()][-1] == "head.act"
    assert len(net("resnet50").sites()) == 1 + 3 * 16


def test_stage_widths_deepreshape_parameterisation():
    assert stage_widths(16, (5, 5, 3)) == (16, 80, 400, 1200)
    assert stage_widths(32, (2, 5, 3)) == (32, 64, 320, 960)


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"stages": [{"depth": 0, "width": 8}]}, "stages[0].depth"),
        ({"stages": [{"depth": 1, "width": 8, "block": "dense"}]}, "stages[0].block"),
        ({"stages": [{"depth": 1, "width": 8}], "colour": 1}, "colour: unknown key"),
        ({"stages": []}, "stages: expected at least one stage"),
        ({}, "stages: missing required key"),
        ({"stages": [{"depth": 1, "width": 8}], "acts": {"layer9.0.act1": "relu"}}, "acts.layer9.0.act1"),
        ({"stages": [{"depth": 1, "width": 8}], "acts": {"stem.act": "gelu"}}, "acts.stem.act"),
        ({"stages": [{"depth": 1, "width": 8}], "stem": {"kind": "vit"}}, "stem.kind"),
        ({"stages": [{"depth": 1, "width": 8}], "resolution": "32"}, "resolution"),
        ({"stages": [{"depth": 1, "width": 8, "block": "bottleneck"}], "preact": True}, "pre-activation"),
    ],
)
def test_bad_spec_names_the_field(obj, message):
    with pytest.raises(SpecError) as err:
        ArchSpec.from_json(json.dumps(obj), source="x.json")
    assert str(err.value).startswith("x.json: ")
    assert message in str(err.value)


def test_mask_shape_is_checked():
    spec = resnet((8,), (1,), resolution=8)
    with pytest.raises(SpecError, match="mask.shape"):
        spec.with_acts({"stem.act": Act("relu", Mask.from_array(np.ones(4, bool)))})
