import pytest
import torch
import torchvision
from torch import nn

from pisearch.models import MaskedAct, Poly, build
from pisearch.spec import Act, Mask, net


def _torchvision_cifar(name: str, classes: int) -> nn.Module:
    model = getattr(torchvision.models, name)(num_classes=classes)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_param_count_equals_torchvision_cifar_stem(name):
    ours = build(net(name, num_classes=100))
    theirs = _torchvision_cifar(name, 100)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_imagenet_stem_matches_torchvision_resnet18():
    ours = build(net("resnet18", resolution=224, num_classes=1000, stem="imagenet"))
    theirs = torchvision.models.resnet18()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    assert ours(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_site_modules_follow_spec():
    spec = net("resnet18").with_acts({"layer1.0.act1": "poly", "layer2.1.act2": "identity"})
    model = build(spec)
    assert isinstance(model.get_submodule("layer1.0.act1"), Poly)
    assert isinstance(model.get_submodule("layer2.1.act2"), nn.Identity)
    assert isinstance(model.get_submodule("stem.act"), nn.ReLU)


def test_masked_act_mixes_relu_and_identity():
    keep = torch.tensor([True, False])
    act = MaskedAct(keep)
    x = -torch.ones(1, 2, 2, 2)
    y = act(x)
    assert (y[:, 0] == 0).all() and (y[:, 1] == -1).all()


def test_zero_init_residual_makes_blocks_identity_on_branch():
    model = build(net("resnet18"), zero_init_residual=True)
    assert all(float(b.last_bn().weight.detach().abs().sum()) == 0 for b in model.blocks())


def test_masked_spec_builds_masked_module():
    spec = net("resnet18", resolution=8)
    site = spec.sites()[1]
    spec = spec.with_acts({site.name: Act("relu", Mask.from_array(torch.arange(site.channels) % 2 == 0), "poly")})
    module = build(spec).get_submodule(site.name)
    assert isinstance(module, MaskedAct) and isinstance(module.off, Poly)
