import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

import pisearch
from pisearch.cli import main
from pisearch.cost import count
from pisearch.errors import UserError
from pisearch.models import MaskedAct, build
from pisearch.models.verify import count_by_hooks
from pisearch.report.export import load_export, onnx_relu_count, write_export
from pisearch.spec import Act, ArchSpec, Mask, resnet
from pisearch.study import load_study_config, run_study
from pisearch.study.artifacts import fetch_weights
from pisearch.study.select import eligible, open_run, pick_trial

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------------------
# MaskedAct: ReLU only over the kept elements, same function as the elementwise definition
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pixel", [False, True])
@pytest.mark.parametrize("off", ["identity", "poly"])
def test_masked_act_equals_elementwise_definition(pixel, off):
    torch.manual_seed(0)
    keep = torch.rand((5, 3, 4) if pixel else (5,)) < 0.5
    act = MaskedAct(keep, off)
    if off == "poly":
        act.off.coef.data.normal_()
    x = torch.randn(2, 5, 3, 4, requires_grad=True)
    ref_x = x.detach().clone().requires_grad_(True)
    k = keep if pixel else keep.view(-1, 1, 1)
    ref = torch.where(k, torch.relu(ref_x), act.off(ref_x))
    y = act(x)
    assert torch.allclose(y, ref, atol=1e-6)
    weights = torch.randn_like(y)
    (y * weights).sum().backward()
    (ref * weights).sum().backward()
    assert torch.allclose(x.grad, ref_x.grad, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# write_export / load_export on a spec with channel- and pixel-masked sites
# ---------------------------------------------------------------------------------------------------------------
def masked_spec():
    spec = resnet((4, 8), (1, 1), resolution=8, num_classes=3)
    sites = {s.name: s for s in spec.sites()}
    gen = torch.Generator().manual_seed(1)

    def mask(name, pixel):
        s = sites[name]
        return Mask.from_array(torch.rand((s.channels, s.height, s.width) if pixel else (s.channels,),
                                          generator=gen) < 0.5)

    return spec.with_acts({
        "layer1.0.act1": Act("relu", mask("layer1.0.act1", False), "poly"),
        "layer1.0.act2": Act("relu", mask("layer1.0.act2", True), "identity"),
        "layer2.0.act1": Act("relu", mask("layer2.0.act1", True), "poly"),
        "layer2.0.act2": "poly",
    })


def trained_like(spec):
    torch.manual_seed(0)
    model = build(spec)
    for p in model.parameters():  # non-trivial BN and poly coefficients
        p.data.add_(0.1 * torch.randn_like(p))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def relu_elements_by_onnxruntime(path: Path, image: np.ndarray) -> int:
    """Run the graph with every Relu output exposed and add up the sizes (independent of shape inference)."""
    model = onnx.load(str(path))
    relu_outputs = [n.output[0] for n in model.graph.node if n.op_type == "Relu"]
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in relu_outputs)
    session = ort.InferenceSession(model.SerializeToString())
    outputs = session.run(relu_outputs, {"input": image})
    return sum(o.size for o in outputs)


@pytest.fixture(scope="module")
def masked_export(tmp_path_factory):
    spec = masked_spec()
    model = trained_like(spec)
    out = tmp_path_factory.mktemp("exports") / "masked"
    write_export(out, spec, model, {"accuracy": 0.5, "dataset": "synthetic", "level": 1},
                 reproduce="pisearch export runs/x --trial 7 -o masked", extra={"method": "unit test"})
    return spec, model, out


def test_export_round_trip_outputs(masked_export):
    spec, model, out = masked_export
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["arch.json", "model.safetensors", "model.onnx", "MODEL_CARD.md", "metrics.json"])
    x = torch.randn(3, 3, 8, 8)
    loaded = pisearch.load(out)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert load_export(out)[0] == spec and (out / "arch.json").read_text() == spec.to_json()


def test_onnx_matches_torch_with_dynamic_batch(masked_export):
    spec, model, out = masked_export
    graph = onnx.load(str(out / "model.onnx"))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    session = ort.InferenceSession(str(out / "model.onnx"))
    for batch in (1, 5):
        x = torch.randn(batch, 3, 8, 8)
        (y,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            assert np.abs(y - model(x).numpy()).max() < 1e-4


def test_onnx_relu_elements_equal_spec_count(masked_export):
    spec, model, out = masked_export
    relus = count(spec).relus
    full = sum(s.numel for s in spec.sites() if spec.act_map[s.name].kind == "relu")
    assert relus < full  # the masks remove ReLUs, so a graph with Relu over whole sites would fail
    image = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert relu_elements_by_onnxruntime(out / "model.onnx", image) == relus
    assert onnx_relu_count(out / "model.onnx") == relus
    assert count_by_hooks(model, (3, 8, 8)).relus == relus


def test_card_and_metrics(masked_export):
    spec, _, out = masked_export
    cost = count(spec)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["cost"]["relus"] == cost.relus and metrics["cost"]["relus_b"] == cost.relus_b
    assert metrics["relus_onnx"] == cost.relus and metrics["spec_hash"] == spec.hash
    assert metrics["pisearch_version"] == pisearch.__version__
    assert set(metrics["estimates"]) == {"delphi", "sci", "cheetah"}
    assert all(set(by_net) == {"lan", "wan"} for by_net in metrics["estimates"].values())
    assert metrics["estimates"]["delphi"]["wan"]["latency_ms"] > metrics["estimates"]["delphi"]["lan"]["latency_ms"]
    card = (out / "MODEL_CARD.md").read_text()
    for text in (f"{cost.relus:,}", f"{cost.relus_b:,}", f"{cost.polys:,}", f"{cost.macs:,}", f"{cost.params:,}",
                 "convention B", "0.5000", "fidelity level 1", "--trial 7", "unit test"):
        assert text in card
    assert sum(f"| {s.name} |" in card for s in spec.sites()) == len(spec.sites())


def relu_over_whole_site(model):
    """Same outputs and state, but Relu evaluated on every element (what a masked export must not do)."""
    act = model.layer1[0].act2
    act.forward = lambda x: torch.where(act.keep, torch.relu(x), act.off(x))


def plain_relu(model):
    model.layer1[0].act2 = nn.ReLU()  # drops the mask buffer: the weights no longer fit the spec


@pytest.mark.parametrize("break_model, message", [(relu_over_whole_site, "evaluates .* ReLUs per image"),
                                                  (plain_relu, "weights do not fit")])
def test_model_not_implementing_spec_leaves_nothing(tmp_path, break_model, message):
    spec = masked_spec()
    model = trained_like(spec)
    break_model(model)
    with pytest.raises(ValueError, match=message):
        write_export(tmp_path / "out", spec, model, {"accuracy": 0.5})
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_folder_that_is_not_an_export(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    spec = masked_spec()
    with pytest.raises(UserError, match="not an export folder"):
        write_export(tmp_path, spec, build(spec), {"accuracy": 0.5})
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# ---------------------------------------------------------------------------------------------------------------
# Choosing the trial
# ---------------------------------------------------------------------------------------------------------------
def frame(rows):
    base = {"state": "COMPLETE", "feasible": True, "source": "search", "spec": "{}", "level": 0, "reason": None}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_pick_by_budget_and_min_accuracy():
    df = frame([
        {"number": 0, "spec_hash": "a", "accuracy": 0.60, "relus": 100},
        {"number": 1, "spec_hash": "b", "accuracy": 0.80, "relus": 300},
        {"number": 2, "spec_hash": "c", "accuracy": 0.80, "relus": 250},
        {"number": 3, "spec_hash": "d", "accuracy": 0.95, "relus": 900, "feasible": False},
        {"number": 4, "spec_hash": "e", "accuracy": 0.99, "relus": 200, "state": "FAIL"},
    ])
    assert pick_trial(df, budget=299)["number"] == 2
    assert pick_trial(df, budget=1000)["number"] == 2  # ties on accuracy: fewer ReLUs; infeasible never picked
    assert pick_trial(df, budget=249)["number"] == 0
    assert pick_trial(df, min_accuracy=0.7)["number"] == 2
    assert pick_trial(df, min_accuracy=0.5)["number"] == 0
    with pytest.raises(UserError, match="smallest ReLU count available is 100"):
        pick_trial(df, budget=99)
    with pytest.raises(UserError, match="best accuracy available is 0.8000"):
        pick_trial(df, min_accuracy=0.9)
    with pytest.raises(UserError, match="exactly one"):
        pick_trial(df, budget=10, min_accuracy=0.5)


def test_highest_fidelity_level_of_an_architecture_is_used():
    df = frame([
        {"number": 0, "spec_hash": "a", "accuracy": 0.90, "relus": 100, "level": 0},
        {"number": 1, "spec_hash": "b", "accuracy": 0.85, "relus": 120, "level": 0},
        {"number": 5, "spec_hash": "a", "accuracy": 0.70, "relus": 100, "level": 1},
    ])
    assert sorted(eligible(df)["number"]) == [1, 5]
    assert pick_trial(df, budget=200)["number"] == 1


# ---------------------------------------------------------------------------------------------------------------
# A small real study and the CLI
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    space = yaml.safe_load((ROOT / "search_spaces" / "tiny.yaml").read_text())
    space["acts"]["choices"] = ["relu"]  # every candidate has ReLUs, so budgets below all of them exist
    (tmp / "space.yaml").write_text(yaml.safe_dump(space))
    (tmp / "study.yaml").write_text(yaml.safe_dump({
        "name": "t", "space": "space.yaml", "dataset": {"name": "synthetic", "resolution": 16},
        "fidelity": {"epochs": 1, "batch_size": 32, "train_subset": 96, "threads": 1},
        "n_trials": 3, "sampler": {"name": "random"}, "seed": 5, "keep_weights": True,
    }))
    config, space_path = load_study_config(tmp / "study.yaml")
    result = run_study(config, space_path, out_dir=tmp / "run", progress=False)
    assert set(result.trials["state"]) == {"COMPLETE"}
    return tmp / "run", result.trials


def cli(capsys, *args):
    argv = sys.argv
    sys.argv = ["pisearch", "export", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code
    finally:
        sys.argv = argv
    out = capsys.readouterr()
    return code, out.out, out.err


def trial_model(run_dir, row):
    """The trial's own model: its spec with the weights it kept."""
    model = build(ArchSpec.from_json(row["spec"]))
    model.load_state_dict(fetch_weights(row["weights_artifact_id"], run_dir))
    return model.eval()


def test_export_by_budget_uses_kept_weights(study_run, tmp_path, capsys):
    run_dir, trials = study_run
    budget = int(trials["relus"].median())
    fits = trials[trials["relus"] <= budget].sort_values(["accuracy", "relus"], ascending=[False, True])
    expected = fits.iloc[0]
    code, out, err = cli(capsys, run_dir, "--budget", budget, "-o", tmp_path / "best")
    assert code == 0, err
    assert f"trial {expected['number']} " in out
    spec, loaded = load_export(tmp_path / "best")
    assert spec.to_json() == expected["spec"]
    x = torch.randn(4, spec.in_channels, spec.resolution, spec.resolution)
    with torch.no_grad():
        assert torch.equal(loaded(x), trial_model(run_dir, expected)(x))
    metrics = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert metrics["accuracy"] == expected["accuracy"] and metrics["trial"] == expected["number"]
    assert metrics["level"] == 0 and metrics["fidelity"]["epochs"] == 1
    assert metrics["precision"] == expected["precision"] == metrics["fidelity"]["precision"]  # what it trained in
    assert metrics["pisearch_version"] == pisearch.__version__ == metrics["trained_by"] == expected["pisearch_version"]
    card = (tmp_path / "best" / "MODEL_CARD.md").read_text()
    assert f"--trial {expected['number']}" in card and f"Trained in {expected['precision']}." in card
    version = pisearch.__version__
    assert f"exported by pisearch {version}." in card and f"Trained by pisearch {version}." in card


def test_retraining_at_the_trial_fidelity_reproduces_its_weights(study_run, tmp_path, capsys):
    run_dir, trials = study_run
    row = trials.iloc[-1]
    code, _, err = cli(capsys, run_dir, "--trial", row["number"], "--retrain-epochs", 1, "-o", tmp_path / "re")
    assert code == 0, err
    metrics = json.loads((tmp_path / "re" / "metrics.json").read_text())
    assert metrics["weights"] == "retrained 1 epochs" and metrics["accuracy"] == row["accuracy"]
    assert metrics["precision"] == row["precision"]
    retrained = pisearch.load(tmp_path / "re").state_dict()
    kept = trial_model(run_dir, row).state_dict()
    assert all(torch.allclose(retrained[k].float(), kept[k].float(), atol=1e-5) for k in kept)


def test_storage_url_is_opened_read_only(study_run):
    run_dir, trials = study_run
    db = run_dir / "study.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    run = open_run(f"sqlite:///{db}")
    assert run.run_dir == run_dir and run.study.study_name == "t" and len(run.trials) == len(trials)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def corrupted(tmp_path):
    bad = tmp_path / "bad_run"
    bad.mkdir()
    (bad / "study.db").write_bytes(b"not a database " * 300)
    return bad


def without_artifacts(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("artifacts"))
    return copy


@pytest.mark.parametrize("case, message", [
    ("budget", "smallest ReLU count available is {low:,}"),
    ("missing", "no such run folder"),
    ("corrupted", "cannot read the study storage"),
    ("trial", "no such trial"),
    ("study", "no study 'other'"),
    ("artifacts", "no artifacts/ folder"),
])
def test_errors_exit_2_with_one_line_and_write_nothing(study_run, tmp_path, capsys, case, message):
    run_dir, trials = study_run
    low = int(trials["relus"].min())
    target, extra = {  # built lazily: each case makes only its own folder
        "budget": lambda: (run_dir, ["--budget", low - 1]),
        "missing": lambda: (tmp_path / "nowhere", ["--trial", 0]),
        "corrupted": lambda: (corrupted(tmp_path), ["--trial", 0]),
        "trial": lambda: (run_dir, ["--trial", 99]),
        "study": lambda: (run_dir, ["--study", "other", "--trial", 0]),
        "artifacts": lambda: (without_artifacts(run_dir, tmp_path), ["--trial", 0]),
    }[case]()
    code, out, err = cli(capsys, target, *extra, "-o", tmp_path / "out")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message.format(low=low) in err
    assert not (tmp_path / "out").exists()
