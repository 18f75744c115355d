import math

import pydantic
import pytest
import torch
from torch import nn

from pisearch.data import ImageData, load_dataset
from pisearch.errors import UserError
from pisearch.spec import resnet
from pisearch.spec import Act, Mask
from pisearch.train import (Fidelity, bf16_supported, evaluate, has_non_relu_site, lr_at, recalibrate_bn,
                            resolved_precision, seeded_build, train_proxy, zero_init_for)
from pisearch.train import proxy as proxy_module
from pisearch.train.batches import NORM_MEAN, NORM_STD, DeviceImages

FAST = {"epochs": 3, "batch_size": 32, "lr": 0.2, "eval_batch_size": 256, "threads": 1}


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic", resolution=8)


def tiny_spec(acts=None):
    return resnet((4, 8), (1, 1), resolution=8, acts=acts)


# --- Fidelity ---------------------------------------------------------------------------------------------------

def test_fidelity_rejects_unknown_keys_and_bad_values():
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Fidelity(epoch=3)
    with pytest.raises(pydantic.ValidationError, match="nesterov"):
        Fidelity(momentum=0.0)
    with pytest.raises(pydantic.ValidationError):
        Fidelity(optimizer="lamb")
    assert Fidelity(momentum=0.0, nesterov=False).momentum == 0.0


def test_fidelity_auto_settings_and_their_one_line_errors():
    assert Fidelity(zero_init_residual="auto").zero_init_residual == "auto"
    assert Fidelity(zero_init_residual=False).zero_init_residual is False      # stored study configs: booleans
    assert Fidelity(precision="auto").precision == "auto"
    with pytest.raises(pydantic.ValidationError, match="expected true, false or 'auto', got 'sometimes'"):
        Fidelity(zero_init_residual="sometimes")
    with pytest.raises(pydantic.ValidationError, match="expected true, false or 'auto', got 1"):
        Fidelity(zero_init_residual=1)
    with pytest.raises(pydantic.ValidationError, match="precision"):
        Fidelity(precision="fp16")


def test_lr_schedule_warms_up_then_decays():
    f = Fidelity(lr=0.4)
    assert [lr_at(s, 10, 4, f, 0.4) for s in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert lr_at(4, 10, 4, f, 0.4) == pytest.approx(0.4)
    assert lr_at(7, 10, 4, f, 0.4) == pytest.approx(0.2)          # half-way through the cosine
    assert lr_at(9, 10, 4, Fidelity(schedule="constant"), 0.4) == 0.4


# --- batches ----------------------------------------------------------------------------------------------------

def test_plain_batch_is_normalised_channels_last():
    x = torch.randint(0, 256, (5, 3, 6, 6), dtype=torch.uint8)
    images = DeviceImages(ImageData(x, torch.zeros(5, dtype=torch.long), 2, "t"), "cpu")
    out = images.batch(torch.tensor([3, 1]))
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out, (x[[3, 1]].float() / 255 - NORM_MEAN) / NORM_STD, atol=1e-6)


def test_augmented_batch_is_a_shifted_maybe_flipped_crop():
    x = torch.randint(1, 256, (16, 2, 8, 8), dtype=torch.uint8)
    images = DeviceImages(ImageData(x, torch.zeros(16, dtype=torch.long), 2, "t"), "cpu", augment=True)
    assert images.pad == 1
    out = images.batch(torch.arange(16), torch.Generator().manual_seed(0))
    raw = (out * NORM_STD + NORM_MEAN) * 255
    padded = nn.functional.pad(x.float(), (1, 1, 1, 1))
    flips, shifts = 0, 0
    for i in range(16):
        crops = {(oy, ox, f): padded[i, :, oy:oy + 8, ox:ox + 8].flip(-1) if f else padded[i, :, oy:oy + 8, ox:ox + 8]
                 for oy in range(3) for ox in range(3) for f in (False, True)}
        match = [k for k, c in crops.items() if torch.allclose(raw[i], c, atol=1e-3)]
        assert match, f"image {i} is not a crop/flip of its padded original"
        flips += match[0][2]
        shifts += match[0][:2] != (1, 1)
    assert 0 < flips < 16 and shifts > 0


# --- training ---------------------------------------------------------------------------------------------------

def test_seeded_build_is_reproducible_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = seeded_build(tiny_spec(), Fidelity(seed=3)), seeded_build(tiny_spec(), Fidelity(seed=3))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = seeded_build(tiny_spec(), Fidelity(seed=4))
    assert not torch.equal(a.stem.conv.weight, c.stem.conv.weight)


def test_zero_init_auto_only_for_networks_with_a_non_relu_site():
    relu = tiny_spec()
    poly = tiny_spec({"layer2.0.act2": "poly"})
    identity = tiny_spec({"stem.act": "identity"})
    masked = [relu.with_acts({"layer1.0.act1": Act(mask=Mask.from_array(torch.arange(4) < k))}) for k in (4, 3)]
    assert [has_non_relu_site(s) for s in (relu, poly, identity, *masked)] == [False, True, True, False, True]
    auto = Fidelity(zero_init_residual="auto")
    for spec, zeroed in ((relu, False), (poly, True), (identity, True)):
        model = seeded_build(spec, auto)
        last_bns = [b.last_bn().weight for b in model.blocks()]
        assert all(bool((w == 0).all()) == zeroed for w in last_bns), spec.summary()
        assert zero_init_for(spec, auto) is zeroed
        assert zero_init_for(spec, Fidelity(zero_init_residual=True)) is True
        assert zero_init_for(spec, Fidelity(zero_init_residual=False)) is False


def test_precision_auto_is_bf16_only_with_bf16_units(monkeypatch):
    monkeypatch.delenv("PISEARCH_BF16", raising=False)
    assert Fidelity().precision == "auto"                                           # the default
    for avx512_bf16, amx, expected in ((False, False, "fp32"), (True, False, "bf16"), (False, True, "bf16")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert resolved_precision(Fidelity(precision="auto"), torch.device("cpu")) == expected
        assert resolved_precision(Fidelity(precision="fp32"), "cpu") == "fp32"     # explicit settings stay
        assert resolved_precision(Fidelity(precision="bf16"), "cpu") == "bf16"


@pytest.mark.parametrize("forced, expected", [("1", "bf16"), ("0", "fp32")])
@pytest.mark.parametrize("hardware", [True, False])
def test_the_environment_overrides_bf16_detection_either_way(monkeypatch, forced, expected, hardware):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: hardware)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setenv("PISEARCH_BF16", forced)
    assert resolved_precision(Fidelity(), "cpu") == expected
    monkeypatch.setenv("PISEARCH_BF16", "yes")
    with pytest.raises(UserError, match=r"\$PISEARCH_BF16: expected 1 .* or 0 .*, got 'yes'"):
        bf16_supported("cpu")


@pytest.mark.parametrize("supported, dtype", [(False, torch.float32), (True, torch.bfloat16)])
def test_precision_auto_trains_in_what_it_resolves_to(synthetic, monkeypatch, supported, dtype):
    monkeypatch.setattr(proxy_module, "bf16_supported", lambda device: supported)
    f = Fidelity(**{**FAST, "epochs": 1}, train_subset=64, precision="auto")
    model = seeded_build(tiny_spec(), f)
    seen = set()
    model.fc.register_forward_hook(lambda m, inp, out: seen.add(out.dtype) if m.training else None)
    assert train_proxy(model, synthetic.train, synthetic.val, f).status == "ok"
    assert seen == {dtype}


@pytest.mark.parametrize("acts, precision", [(None, "fp32"), ({"layer1.0.act1": "poly", "layer2.0.act2": "poly"},
                                                               "fp32"), (None, "bf16")])
def test_proxy_learns_synthetic_data(synthetic, acts, precision):
    f = Fidelity(**FAST, precision=precision)
    seen = []
    r = train_proxy(seeded_build(tiny_spec(acts), f), synthetic.train, synthetic.val, f,
                    progress=lambda e, a: seen.append((e, a)))
    assert r.status == "ok" and not r.retried and r.reason is None
    assert len(r.accuracy_per_epoch) == 3 and r.accuracy == r.accuracy_per_epoch[-1]
    assert seen == list(enumerate(r.accuracy_per_epoch, start=1))
    assert r.accuracy > 0.6            # chance is 0.1
    assert r.images_per_second > 0 and r.train_seconds > 0


def test_same_seed_same_accuracy_and_weights(synthetic):
    f = Fidelity(**FAST, seed=7, augment=True)   # shuffling and augmentation both drawn from the seed
    models = [seeded_build(tiny_spec(), f) for _ in range(2)]
    results = [train_proxy(m, synthetic.train, synthetic.val, f) for m in models]
    assert results[0].accuracy_per_epoch == results[1].accuracy_per_epoch
    assert all(torch.equal(p, q) for p, q in zip(models[0].parameters(), models[1].parameters()))
    other = seeded_build(tiny_spec(), f)
    train_proxy(other, synthetic.train, synthetic.val, f.model_copy(update={"seed": 8}))
    assert not torch.equal(other.fc.weight, models[0].fc.weight)


def test_train_subset_and_batches_seen(synthetic):
    f = Fidelity(**{**FAST, "epochs": 2}, train_subset=100, bn_recalibrate=False)
    model = seeded_build(tiny_spec(), f)
    sizes = []
    model.register_forward_hook(lambda m, inp, out: sizes.append(len(inp[0])) if m.training else None)
    train_proxy(model, synthetic.train, synthetic.val, f)
    assert sizes == [32] * 6            # 100 images → 3 full batches of 32 per epoch, last partial dropped


def test_poisoned_lr_diverges_after_one_retry(synthetic):
    f = Fidelity(**{**FAST, "lr": 1e30}, grad_clip=None)
    r = train_proxy(seeded_build(tiny_spec(), f), synthetic.train, synthetic.val, f)
    assert r.status == "diverged" and r.retried and math.isnan(r.accuracy)
    assert "epoch 1" in r.reason and "retry" in r.reason and "lr 1e+29" in r.reason


class NaNFirst(nn.Module):
    """Wraps a model and outputs NaN for its first ``n`` training calls (a run that diverges once)."""

    def __init__(self, inner: nn.Module, n: int) -> None:
        super().__init__()
        self.inner, self.n = inner, n

    def forward(self, x):
        out = self.inner(x)
        if self.training and self.n > 0:
            self.n -= 1
            return out * math.nan
        return out


def test_divergence_is_retried_from_the_same_init(synthetic):
    f = Fidelity(**FAST)
    inner = seeded_build(tiny_spec(), f)
    r = train_proxy(NaNFirst(inner, 1), synthetic.train, synthetic.val, f)
    reference = train_proxy(seeded_build(tiny_spec(), f), synthetic.train, synthetic.val,
                            f.model_copy(update={"lr": f.lr / 10}))
    assert r.status == "ok" and r.retried and "epoch 1, step 1" in r.reason
    assert r.accuracy_per_epoch == reference.accuracy_per_epoch


def test_threads_are_set_then_restored(synthetic):
    before = torch.get_num_threads()
    f = Fidelity(**{**FAST, "epochs": 1, "threads": before + 1})
    during = []
    train_proxy(seeded_build(tiny_spec(), f), synthetic.train, synthetic.val, f,
                progress=lambda e, a: during.append(torch.get_num_threads()))
    assert during == [before + 1] and torch.get_num_threads() == before


# --- evaluation -------------------------------------------------------------------------------------------------

class Constant(nn.Module):
    def __init__(self, k: int, classes: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.nn.functional.one_hot(torch.tensor(k), classes).float())

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def test_evaluate_counts_top1(synthetic):
    val = synthetic.val
    expected = (val.y == 3).float().mean().item()
    assert evaluate(Constant(3, 10), val, batch_size=7) == pytest.approx(expected)


def test_recalibrated_bn_holds_the_data_mean():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4))
    x = torch.randint(0, 256, (12, 3, 6, 6), dtype=torch.uint8)
    images = DeviceImages(ImageData(x, torch.zeros(12, dtype=torch.long), 2, "t"), "cpu")
    recalibrate_bn(model, images, batch_size=4)
    with torch.no_grad():
        conv = model[0](images.batch(torch.arange(12)))
    assert torch.allclose(model[1].running_mean, conv.mean((0, 2, 3)), atol=1e-5)
    assert model[1].momentum == 0.1
