import json
import math
import sys

import pytest
import torch
import torch.nn.functional as F

from pisearch.cli import main
from pisearch.cost import count
from pisearch.data import Splits, load_dataset
from pisearch.data.embedded import synthetic_images
from pisearch.errors import UserError
from pisearch.linearize import METHODS, LinearizeSettings, SNLSettings, kd_loss, linearize, select_budget
from pisearch.linearize.autorep import HysteresisGate, StraightThroughMask, dapa, hysteresis
from pisearch.linearize.base import maskable_sites
from pisearch.linearize.snl import LassoSchedule
from pisearch.models import MaskedAct
from pisearch.models.verify import count_by_hooks
from pisearch.report.export import load_export, write_export
from pisearch.spec import resnet
from pisearch.train import Fidelity, seeded_build, train_proxy

FAST = {"search_epochs": 2, "finetune_epochs": 1, "batch_size": 16}


@pytest.fixture(scope="module")
def tiny():
    """A trained 2-stage ResNet on 8×8 synthetic images (4 classes): 1,024 ReLUs over 5 sites."""
    data = synthetic_images(30, classes=4, resolution=8, seed=3)
    data = data.subset(torch.randperm(len(data), generator=torch.Generator().manual_seed(0)))
    part = lambda a, b: data.subset(torch.arange(a, b))  # noqa: E731
    splits = Splits(part(0, 80), part(80, 100), part(100, 120))
    spec = resnet((4, 8), (1, 1), resolution=8, num_classes=4)
    fidelity = Fidelity(epochs=3, batch_size=16)
    model = seeded_build(spec, fidelity)
    train_proxy(model, splits.train, splits.val, fidelity)
    return spec, model.eval(), splits


# ---------------------------------------------------------------------------------------------------------------
# AutoReP pieces: DaPa, hysteresis, straight-through gradient
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mu,sigma", [(0.0, 1.0), (0.7, 0.5), (-1.2, 2.0), (2.0, 0.8), (-0.3, 0.2)])
def test_dapa_equals_numeric_least_squares_fit(mu, sigma):
    # Normal equations of min E[(ReLU(x) − c2x² − c1x − c0)²], x ~ N(mu, sigma²), by quadrature on a fine grid.
    x = torch.linspace(mu - 12 * sigma, mu + 12 * sigma, 400001, dtype=torch.float64)
    w = torch.exp(-((x - mu) ** 2) / (2 * sigma**2))
    w = w / w.sum()
    basis = torch.stack([x * x, x, torch.ones_like(x)], 1)
    gram = basis.T @ (basis * w[:, None])
    rhs = basis.T @ (torch.relu(x) * w)
    numeric = torch.linalg.solve(gram, rhs)
    closed = dapa(torch.tensor([mu]), torch.tensor([sigma]))[0].double()
    assert torch.allclose(closed, numeric, atol=5e-4), (closed, numeric)


def test_hysteresis_keeps_a_unit_until_its_score_crosses_minus_t_and_revives_above_t():
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    score = torch.tensor([0.001, -0.002, -0.004, 0.002, 0.004, -0.5])
    assert hysteresis(mask, score, 0.003).tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]


def test_straight_through_mask_forwards_the_mask_and_scales_gradient_by_softplus():
    score = torch.tensor([-2.0, -0.1, 0.0, 0.3, 3.0], requires_grad=True)
    mask = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    upstream = torch.tensor([0.5, -1.0, 2.0, 3.0, -0.25])
    out = StraightThroughMask.apply(score, mask)
    assert out.tolist() == mask.tolist()
    (out * upstream).sum().backward()
    assert torch.allclose(score.grad, F.softplus(score.detach()) * upstream)


def test_snl_lambda_grows_after_rounds_without_a_new_low_once_patience_is_over():
    schedule = LassoSchedule(SNLSettings(lambda0=1.0, growth=2.0, patience=2))
    values = []
    for c in [10, 10, 10, 9, 9, 12, 8]:  # rounds 0 1 2 3 4 5 6: no new low at 1 (patient), 2, 4, 5
        schedule.update(c)
        values.append(schedule.value)
    assert values == [1, 1, 2, 2, 4, 8, 8]


def test_kd_loss_is_temperature_scaled_kl():
    torch.manual_seed(0)
    s, t = torch.randn(6, 5), torch.randn(6, 5)
    p = F.softmax(t / 4, 1)
    manual = (p * (p.log() - F.log_softmax(s / 4, 1))).sum(1).mean() * 16
    assert torch.allclose(kd_loss(s, t, 4.0), manual, atol=1e-6)
    assert kd_loss(t, t).abs() < 1e-6


# ---------------------------------------------------------------------------------------------------------------
# The exact-budget selection
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("granularity", ["pixel", "channel"])
@pytest.mark.parametrize("budget", [0, 1, 37, 300, 1023])
def test_select_budget_keeps_the_top_units_within_one_granule(tiny, granularity, budget):
    spec = tiny[0]
    sites = maskable_sites(spec, granularity, "identity")
    g = torch.Generator().manual_seed(budget)
    scores = {s.name: torch.rand(s.unit_shape, generator=g) for s in sites}
    keeps = select_budget(scores, sites, budget)
    kept = sum(int(keeps[s.name].sum()) * s.granule for s in sites)
    if granularity == "pixel":
        assert kept == budget
        threshold = min(float(scores[s.name][keeps[s.name]].min()) for s in sites if keeps[s.name].any()) \
            if budget else math.inf
        dropped = max(float(scores[s.name][~keeps[s.name]].max()) for s in sites if (~keeps[s.name]).any())
        assert dropped <= threshold  # nothing left out outranks anything kept
    else:
        assert budget - max(s.granule for s in sites) < kept <= budget


# ---------------------------------------------------------------------------------------------------------------
# Every method lands on the budget, checked by forward hooks on the loaded export
# ---------------------------------------------------------------------------------------------------------------
def export_and_reload(tmp_path, spec, model, report):
    out = write_export(tmp_path / "lin", spec, model, {"accuracy": report["accuracy"], "dataset": "synthetic"})
    return load_export(out)


@pytest.mark.parametrize("fraction", [0.05, 0.10, 0.25])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_pixel_budget_is_exact_by_hooks(tiny, tmp_path, method, fraction):
    spec, model, splits = tiny
    budget = round(fraction * count(spec).relus)
    new_spec, new_model, report = linearize(method, model, spec, splits, budget, FAST)
    loaded_spec, loaded = export_and_reload(tmp_path, new_spec, new_model, report)
    hooks = count_by_hooks(loaded, (3, 8, 8))
    assert hooks.relus == count(loaded_spec).relus == report["relus"] == budget
    off = count(spec).relus - budget
    assert hooks.polys == (off if METHODS[method].off == "poly" else 0)
    assert 0 <= report["accuracy"] <= 1 and report["finetune_seconds"] >= 0


@pytest.mark.parametrize("method", sorted(METHODS))
def test_channel_budget_within_one_channel_by_hooks(tiny, tmp_path, method):
    spec, model, splits = tiny
    budget = round(0.10 * count(spec).relus)
    new_spec, new_model, report = linearize(method, model, spec, splits, budget, FAST, granularity="channel")
    _, loaded = export_and_reload(tmp_path, new_spec, new_model, report)
    relus = count_by_hooks(loaded, (3, 8, 8)).relus
    masks = [m for m in loaded.modules() if isinstance(m, MaskedAct)]
    assert all(m.per_channel for m in masks)
    assert budget - max(s.height * s.width for s in spec.sites()) < relus <= budget


def test_naive_without_finetune_keeps_the_trained_weights_and_drops_late_sites_first(tiny):
    spec, model, splits = tiny
    budget = 700  # stem (256) + layer1 (512) > 700: layer1.0.act2 is cut, everything after it is identity
    new_spec, new_model, _ = linearize("naive", model, spec, splits, budget,
                                      {**FAST, "search_epochs": 0, "finetune_epochs": 0})
    kinds = {name: act.kind if act.mask is None else "masked" for name, act in new_spec.acts}
    assert kinds == {"stem.act": "relu", "layer1.0.act1": "relu", "layer1.0.act2": "masked",
                     "layer2.0.act1": "identity", "layer2.0.act2": "identity"}
    original = dict(model.named_parameters())  # BN running statistics are re-estimated for the new masks
    for key, value in new_model.named_parameters():
        assert torch.equal(value, original[key]), key


def test_an_already_masked_network_only_loses_relus(tiny):
    spec, model, splits = tiny
    half_spec, half_model, _ = linearize("naive", model, spec, splits, 512, FAST)
    new_spec, _, report = linearize("snl", half_model, half_spec, splits, 100, FAST)
    assert report["relus"] == 100
    before = {s.name: s.keep for s in maskable_sites(half_spec, "pixel", "identity")}
    after = {s.name: s.keep for s in maskable_sites(new_spec, "pixel", "identity")}
    assert all(bool((after[name] <= before[name]).all()) for name in after)


def test_bad_arguments_are_user_errors(tiny):
    spec, model, splits = tiny
    with pytest.raises(UserError, match="--budget 1,024"):
        linearize("snl", model, spec, splits, 1024, FAST)
    with pytest.raises(UserError, match="--method"):
        linearize("lasso", model, spec, splits, 10, FAST)
    with pytest.raises(UserError, match="granularity"):
        linearize("cd", model, spec, splits, 10, FAST, granularity="block")
    with pytest.raises(ValueError):
        LinearizeSettings(snl={"lambda0": -1})


# ---------------------------------------------------------------------------------------------------------------
# Each method's output shows its paper's mechanism; every method spends the same compute
# ---------------------------------------------------------------------------------------------------------------
def test_snl_run_grows_lambda_exactly_after_each_round_without_a_new_low(tiny):
    spec, model, splits = tiny
    snl = {"lambda0": 1e-4, "growth": 2.0, "patience": 2, "round_steps": 2}
    details = linearize("snl", model, spec, splits, 100, {**FAST, "search_epochs": 6, "snl": snl})[2]["details"]
    counts, lambdas = details["soft_counts"], details["lambdas"]
    lowest, expected, grew, held = math.inf, [1e-4], 0, 0
    for i, c in enumerate(counts[:-1]):  # lambdas[i] is λ during round i; the rule sets λ for round i + 1
        new_low = c < lowest
        lowest = min(lowest, c)
        expected.append(expected[-1] * (2.0 if not new_low and i >= 2 else 1.0))
        grew += not new_low and i >= 2
        held += new_low and i >= 2
    assert lambdas == pytest.approx(expected, rel=1e-12)
    assert grew >= 3 and held >= 1  # both branches of the rule happened
    assert counts[0] == 1024 and min(counts) < 400  # the growing L1 term did switch α off


def test_autorep_run_keeps_every_mask_entry_whose_score_is_inside_plus_minus_t(tiny, monkeypatch):
    spec, model, splits = tiny
    t = 0.05  # with mask lr 0.05 a score spends steps inside ±t; a mild penalty lets some scores come back up
    seen = []  # (mask before, score, mask after) of every allowed unit at every update
    update = HysteresisGate.update_mask

    def recording(gate):
        before, score = gate.mask.clone(), gate.score.detach().clone()
        update(gate)
        keep = gate.allowed > 0
        seen.append((before[keep], score[keep], gate.mask[keep].clone()))

    monkeypatch.setattr(HysteresisGate, "update_mask", recording)
    settings = {**FAST, "search_epochs": 8, "mask_lr": 0.05, "autorep": {"threshold": t, "penalty": 1.0}}
    linearize("autorep", model, spec, splits, 900, settings)
    before, score, after = (torch.cat(parts) for parts in zip(*seen))
    inside = score.abs() < t
    assert torch.equal(after[inside], before[inside])  # within ±t nothing flips
    assert (after[score > t] == 1).all() and (after[score <= -t] == 0).all()
    assert int(((before == 1) & (after == 0)).sum()) > 100 and int(((before == 0) & (after == 1)).sum()) >= 1
    # A plain threshold at 0 would have flipped these: kept units with a negative score and dropped units with a
    # positive score, both inside the band.
    assert int((inside & (before == 1) & (score < 0)).sum()) > 10
    assert int((inside & (before == 0) & (score > 0)).sum()) > 10


def test_cd_run_takes_a_block_over_tau_only_when_every_try_is_over_it_and_then_the_smallest(tiny):
    spec, model, splits = tiny
    tries, tau = 3, 0.0  # 20 validation images: drops come in steps of 5 points
    details = linearize("cd", model, spec, splits, 100, {**FAST, "cd": {"tries": tries, "tau": tau, "rounds": 20}})[2]["details"]
    by_tau = forced = 0
    for drops, taken in zip(details["drops"], details["taken"]):
        if drops[taken] < tau:  # accepted by tau: the first try under it, after tries all at or over it
            assert taken == len(drops) - 1 and all(d >= tau for d in drops[:-1])
            by_tau += 1
        else:  # none under tau: all tries were made and the smallest drop was taken
            assert all(d >= tau for d in drops) and drops[taken] == min(drops)
            forced += 1
    assert len(details["drops"]) == details["rounds"] == 20
    assert by_tau >= 1 and forced >= 1


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_spends_search_plus_finetune_epochs_of_compute(tiny, method):
    spec, model, splits = tiny
    report = linearize(method, model, spec, splits, 100, {**FAST, "search_epochs": 4})[2]
    total = (4 + 1) * 5  # (search + finetune epochs) × 80 images / 16 per step
    assert total - 1 < report["compute_steps"] <= total
    finetunes = sum(steps > 0 for steps in report["details"].get("finetune_steps", []))
    assert report["eval_images"] == (20 * (report["details"]["tries"] + 1 + finetunes) if method == "cd" else 0)


def test_progress_bar_counts_every_training_step_of_search_and_finetune(tiny, monkeypatch):
    """On a terminal, ``progress`` shows a bar of optimizer steps: the search's under "snl search", then the
    finetune's under "snl finetune", whose total is the steps the report says were run."""
    import io
    import re

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    spec, model, splits = tiny
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    report = linearize("snl", model, spec, splits, 100, FAST, progress=True)[2]
    frames = [f for f in screen.getvalue().split("\r") if "step" in f]
    assert any(f.startswith("snl search") for f in frames)
    shown = [tuple(map(int, re.search(r"(\d+)/(\d+) \[", f).groups())) for f in frames
             if f.startswith("snl finetune")]  # (done, total) of each frame tqdm drew (it skips some)
    assert shown and {total for _, total in shown} == {report["search_steps"] + report["finetune_steps"]}
    assert [done for done, _ in shown] == sorted(done for done, _ in shown)
    assert shown[0][0] >= report["search_steps"]
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    linearize("naive", model, spec, splits, 100, FAST)  # progress off (the study's linearize stage): no bar
    assert quiet.getvalue() == ""


def test_presets_fill_unset_fields_and_explicit_values_win():
    paper = LinearizeSettings(preset="paper", seed=3, snl={"growth": 1.2})
    assert (paper.finetune_epochs, paper.finetune_lr, paper.snl.lambda0, paper.snl.growth, paper.seed) == \
        (100, 1e-3, 1e-5, 1.2, 3)
    assert paper.snl.round_steps is None and not paper.pool_compute and paper.autorep.dapa_steps == 500
    assert LinearizeSettings().snl.lambda0 == 1e-3 and LinearizeSettings(preset="short") == LinearizeSettings()
    with pytest.raises(ValueError, match="short.*paper"):
        LinearizeSettings(preset="fast")


# ---------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------
def cli(monkeypatch, capsys, *args):
    """(exit code, stdout, stderr) of ``pisearch linearize ARGS`` (the typer app always ends with SystemExit)."""
    monkeypatch.setattr(sys, "argv", ["pisearch", "linearize", *map(str, args)])
    with pytest.raises(SystemExit) as stop:
        main()
    out = capsys.readouterr()
    return stop.value.code or 0, out.out, out.err


@pytest.fixture(scope="module")
def parent_export(tmp_path_factory):
    """The tiny network with 10 classes, trained one epoch on the registered synthetic set at 8×8."""
    splits = load_dataset("synthetic", resolution=8)
    spec = resnet((4, 8), (1, 1), resolution=8, num_classes=10)
    fidelity = Fidelity(epochs=1, batch_size=32)
    model = seeded_build(spec, fidelity)
    result = train_proxy(model, splits.train, splits.val, fidelity)
    return write_export(tmp_path_factory.mktemp("parent") / "net", spec, model,
                        {"accuracy": result.accuracy, "dataset": "synthetic"})


def test_cli_round_trip(parent_export, tmp_path, monkeypatch, capsys):
    code, out, err = cli(monkeypatch, capsys, parent_export, "--method", "naive", "--budget", "10%",
                         "-o", tmp_path / "lin", "--epochs", 1, "--search-epochs", 1)
    assert code == 0, err
    spec, model = load_export(tmp_path / "lin")
    assert count_by_hooks(model, (3, 8, 8)).relus == count(spec).relus == 102
    metrics = json.loads((tmp_path / "lin" / "metrics.json").read_text())
    assert (metrics["method"], metrics["budget"], metrics["granularity"], metrics["source"]) == \
        ("naive", 102, "pixel", "naive")
    assert {"accuracy_before", "accuracy", "finetune_seconds"} <= set(metrics)
    assert "1,024 → 102 ReLUs" in out


@pytest.mark.parametrize("budget,message", [("2000", "already has only 1,024"), ("-3", "--budget"),
                                            ("abc", "--budget"), ("100%", "already has only")])
def test_cli_bad_budget_exits_2_with_one_line(parent_export, tmp_path, monkeypatch, capsys, budget, message):
    code, out, err = cli(monkeypatch, capsys, parent_export, "--method", "snl", "--budget", budget,
                         "-o", tmp_path / "x")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "x").exists()


def test_cli_unknown_dataset_exits_2_with_one_line(parent_export, tmp_path, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, parent_export, "--method", "naive", "--budget", "100", "--dataset", "nope",
                       "-o", tmp_path / "x")
    assert code == 2 and "unknown name 'nope'" in err and len(err.strip().splitlines()) == 1


def test_cli_unknown_preset_exits_2_with_one_line(parent_export, tmp_path, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, parent_export, "--method", "naive", "--budget", "100", "--preset", "fast",
                       "-o", tmp_path / "x")
    assert code == 2 and "--preset: expected short or paper, got 'fast'" in err and len(err.strip().splitlines()) == 1
