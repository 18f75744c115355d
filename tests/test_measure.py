"""pisearch.mpc / ``pisearch measure``: tiny exports run under SecretFlow SPU's simulator (SEMI2K and Cheetah), their
outputs held to PyTorch's, the ReLU bytes held to the ReLU count, and bad input refused in one line (exit 2).

Tests that run SPU skip where the ``mpc`` extra is not installed; the bad-input cases run everywhere."""

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import pisearch.cli
from pisearch.cost import count
from pisearch.models import build
from pisearch.mpc import layer_ops, run_network
from pisearch.report import write_export
from pisearch.spec import Act, Mask, resnet

from tests.test_export import trained_like


def needs_spu():
    pytest.importorskip("spu")


def masked_spec():
    """Two stages at 8²: a channel mask with poly off, a pixel mask, a poly site, a plain ReLU stem."""
    spec = resnet((4, 8), (1, 1), resolution=8, num_classes=3)
    keep = torch.Generator().manual_seed(1)
    return spec.with_acts({
        "layer1.0.act1": Act("relu", Mask.from_array(torch.rand(4, generator=keep) < 0.5), "poly"),
        "layer1.0.act2": Act("relu", Mask.from_array(torch.rand(4, 8, 8, generator=keep) < 0.5), "identity"),
        "layer2.0.act2": "poly",
    })


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    pytest.importorskip("onnx")
    spec = masked_spec()
    out = tmp_path_factory.mktemp("exports") / "tiny"
    write_export(out, spec, trained_like(spec), {"accuracy": 0.5, "dataset": "synthetic"})
    return out


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        pisearch.cli.main(args)
    return exit_.value.code, capsys.readouterr()


@pytest.mark.parametrize("protocol", ["semi2k", "cheetah"])
def test_a_tiny_export_runs_under_spu_like_pytorch(tiny_export, tmp_path, protocol, capsys):
    needs_spu()
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_export, folder)
    code, out = run_cli(["measure", str(folder), "--protocol", protocol, "--images", "2"], capsys)
    assert code == 0, out.err
    record = json.loads((folder / "measured.json").read_text())[protocol]
    assert record["max_abs_error"] < 1e-2 * max(1.0, record["max_abs_logit"])
    assert record["same_prediction"] == 1.0 and record["images"] == 2
    assert "synthetic" in record["inputs"] and record["engine"]["version"] == "0.9.5"
    kinds = record["kinds"]
    assert set(kinds) == {"convolution", "relu", "poly", "pooling", "linear", "other"}
    assert kinds["other"]["sent_bytes"] == 0  # adds, gathers and reshapes are local
    for kind in ("convolution", "relu", "poly"):
        assert kinds[kind]["sent_bytes"] > 0 and kinds[kind]["recv_bytes"] > 0 and kinds[kind]["send_actions"] > 0
    total = record["per_image"]
    assert total["sent_bytes"] == pytest.approx(sum(k["sent_bytes"] for k in kinds.values()))
    lan, wan = record["latency_ms"]["lan"], record["latency_ms"]["wan"]
    assert total["seconds"] * 1e3 < lan < wan
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.index("## Private-inference estimates") < card.index("## Private inference measured") \
        and f"| {protocol} | 0.9.5 | 2 |" in card
    assert "measured.json" in out.out


def test_a_second_protocol_keeps_the_first(tiny_export, tmp_path, capsys):
    needs_spu()
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_export, folder)
    for protocol in ("semi2k", "aby3"):
        assert run_cli(["measure", str(folder), "-p", protocol, "--random-inputs"], capsys)[0] == 0
    assert sorted(json.loads((folder / "measured.json").read_text())) == ["aby3", "semi2k"]
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.count("## Private inference measured") == 1 and "| aby3 |" in card and "| semi2k |" in card


def relu_bytes(spec) -> tuple[float, float]:
    """(ReLU, polynomial) bytes party 0 sends and receives in one SEMI2K inference of ``spec``."""
    ops = layer_ops(build(spec))
    run = run_network(ops, np.zeros((1, 3, 8, 8), np.float32), "semi2k")
    by_kind = {"relu": 0.0, "poly": 0.0}
    for op, c in zip(ops, run.passes[0]):
        if op.kind in by_kind:
            by_kind[op.kind] += c.sent_bytes + c.recv_bytes
    return by_kind["relu"], by_kind["poly"]


def test_relu_bytes_grow_with_the_relu_count_and_vanish_when_all_poly():
    needs_spu()
    narrow, wide = resnet((4,), (1,), resolution=8, num_classes=3), resnet((8,), (1,), resolution=8, num_classes=3)
    assert count(wide).relus == 2 * count(narrow).relus == 3 * 512  # stem + two sites, 4 or 8 channels × 8²
    (narrow_relu, narrow_poly), (wide_relu, _) = relu_bytes(narrow), relu_bytes(wide)
    assert narrow_poly == 0 and wide_relu == pytest.approx(2 * narrow_relu, rel=0.05)
    poly_relu, poly_poly = relu_bytes(narrow.with_acts({s.name: "poly" for s in narrow.sites()}))
    assert poly_relu == 0 and poly_poly > 0


def test_outputs_far_from_pytorch_are_refused(tiny_export, tmp_path, capsys):
    needs_spu()
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_export, folder)
    code, out = run_cli(["measure", str(folder), "-p", "semi2k", "--tolerance", "0.000000001"], capsys)
    assert code == 2 and "differ from PyTorch's" in out.err and not (folder / "measured.json").exists()


@pytest.mark.parametrize("case, args, expected", [
    ("weights", ["-p", "semi2k"], "weights do not fit arch.json"),
    ("protocol", ["-p", "spdz"], "SPU does not run 'spdz' (known: cheetah, semi2k, aby3)"),
    ("no spu", ["-p", "cheetah"], "pip install 'pisearch[mpc]'"),
    ("no dataset", ["-p", "semi2k"], "no dataset recorded (key dataset); pass --random-inputs"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, case, args, expected):
    pytest.importorskip("onnx")
    spec = resnet((4,), (1,), resolution=8, num_classes=3)
    folder = tmp_path / "export"
    write_export(folder, spec, build(spec), {"accuracy": 0.5} if case == "no dataset" else
                 {"accuracy": 0.5, "dataset": "synthetic"})
    if case == "weights":
        (folder / "arch.json").write_text(resnet((8,), (1,), resolution=8, num_classes=3).to_json())
    if case == "no spu":
        monkeypatch.setitem(sys.modules, "spu", None)  # import spu raises ImportError
    elif case != "protocol":
        needs_spu()
    code, out = run_cli(["measure", str(folder), *args], capsys)
    assert code == 2 and expected in out.err and len(out.err.strip().splitlines()) == 1
    assert not (folder / "measured.json").exists()


def test_a_study_measure_stage_feeds_the_tables_the_export_and_the_dashboard(tmp_path, capsys):
    needs_spu()
    from pisearch.study import load_study_config, run_study
    from tests.test_study import write_study

    path = write_study(tmp_path, n_trials=3, keep_weights=True, baselines={"deepreshape": {"budgets": [3000]}},
                       protocol={"name": "spu_semi2k"}, measure={"protocol": "semi2k", "top": 1})
    config, space = load_study_config(path)
    result = run_study(config, space, out_dir=tmp_path / "run", progress=False)
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    measured = trials[trials["measured_protocol"].notna()]
    assert set(measured["measured_protocol"]) == {"semi2k"} and measured["number"].nunique() == 1
    number = int(measured["number"].iloc[0])
    assert measured["measured_lan_ms"].iloc[0] > 0 and measured["measured_comm_mb"].iloc[0] > 0
    compare = pd.read_csv(tmp_path / "run" / "compare.csv")
    assert compare["latency_source"].str.startswith("estimated (spu_semi2k model, lan); 1 trials also measured").all()
    assert f"measured:{number}" in result.study.user_attrs
    # a second run measures nothing again
    again = run_study(config, space, out_dir=tmp_path / "run", progress=False)
    assert again.study.user_attrs[f"measured:{number}"] == result.study.user_attrs[f"measured:{number}"]

    code, out = run_cli(["export", str(tmp_path / "run"), "--trial", str(number), "-o", str(tmp_path / "best")],
                        capsys)
    assert code == 0, out.err
    assert "with its SPU semi2k measurement" in out.out
    record = json.loads((tmp_path / "best" / "measured.json").read_text())["semi2k"]
    assert record["spec_hash"] == json.loads((tmp_path / "best" / "metrics.json").read_text())["spec_hash"]
    assert "## Private inference measured under SecretFlow SPU" in (tmp_path / "best" / "MODEL_CARD.md").read_text()
    code, out = run_cli(["dashboard", str(tmp_path / "run"), "--out", str(tmp_path / "d.html")], capsys)
    assert code == 0, out.err
    assert "SPU lan ms" in (tmp_path / "d.html").read_text()


def test_a_measure_stage_without_spu_is_refused_before_training(tmp_path, monkeypatch):
    from pisearch.errors import UserError
    from pisearch.study import load_study_config, run_study
    from tests.test_study import write_study

    monkeypatch.setitem(sys.modules, "spu", None)
    config, space = load_study_config(write_study(tmp_path, measure={"protocol": "cheetah"}))
    with pytest.raises(UserError, match=r"pip install 'pisearch\[mpc\]'"):
        run_study(config, space, out_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "trials.csv").exists()


def test_the_spu_models_hold_the_committed_measurements():
    """The refit constants of pisearch/cost/protocols/spu.py against the raw figures of
    benchmarks/cost_model_vs_spu.py (no SPU needed): every design's bytes within 0.75–1.35×, ranked alike."""
    from pathlib import Path

    from pisearch.cost import estimate
    from pisearch.report import kendall_tau_b
    from pisearch.spec import ArchSpec

    raw = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "cost_model_vs_spu.json")
                     .read_text())
    assert len(raw["specs"]) >= 20
    for protocol in ("cheetah", "semi2k", "aby3"):
        measured, estimated = [], []
        for entry in raw["specs"].values():
            layers = entry["runs"][protocol]["layers"]
            measured.append(sum(x["sent_bytes"] + x["recv_bytes"] for x in layers) / 1e6)
            estimated.append(estimate(count(ArchSpec.from_json(entry["spec"])), f"spu_{protocol}").comm_mb)
        ratio = np.array(estimated) / np.array(measured)
        assert 0.75 < ratio.min() and ratio.max() < 1.35, protocol
        assert kendall_tau_b(estimated, measured) > 0.8, protocol
