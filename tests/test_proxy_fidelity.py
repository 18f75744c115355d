"""Smoke tests of benchmarks/proxy_fidelity.py: rank statistics, Pareto overlap, architectures, variants, and the
script end to end on synthetic data (--quick, three tiny architectures)."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pisearch.cost import count
from pisearch.spec import net
from pisearch.train import Fidelity, has_non_relu_site
from pisearch.train import proxy as proxy_module

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "proxy_fidelity.py"
spec = importlib.util.spec_from_file_location("proxy_fidelity", PATH)
pf = sys.modules["proxy_fidelity"] = importlib.util.module_from_spec(spec)   # dataclasses look the module up
spec.loader.exec_module(pf)


def test_kendall_tau_by_hand_and_against_scipy():
    assert pf.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)    # 5 concordant, 1 discordant
    assert pf.kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert math.isnan(pf.kendall_tau([1, 1, 1], [1, 2, 3]))
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.integers(0, 5, 9), rng.integers(0, 5, 9)                         # many ties
        assert pf.kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)


def test_spearman_rho_against_scipy_with_ties():
    assert pf.average_ranks([10, 30, 20, 30]).tolist() == [1, 3.5, 2, 3.5]
    assert pf.spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(1 - 6 * 2 / (4 * 15))
    rng = np.random.default_rng(1)
    for _ in range(20):
        x, y = rng.integers(0, 4, 8), rng.normal(size=8)
        assert pf.spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_pareto_set_and_jaccard_by_hand():
    relus = [100, 200, 200, 300, 400]
    acc = [0.50, 0.70, 0.60, 0.65, 0.90]
    # 200/0.60 is dominated by 200/0.70 (same ReLUs, higher accuracy), 300/0.65 by 200/0.70
    assert pf.pareto_set(relus, acc) == {0, 1, 4}
    assert pf.pareto_set([1, 1], [0.5, 0.5]) == {0, 1}                           # duplicates both kept
    assert pf.jaccard({0, 1, 4}, {0, 4, 3}) == pytest.approx(2 / 4)
    assert pf.jaccard(set(), set()) == 1.0


def test_architectures_span_the_spaces():
    specs = pf.architectures(list(pf.ARCHS))
    assert len(specs) >= 10 and all(s.resolution == 32 for s in specs.values())
    assert len({s.hash for s in specs.values()}) == len(specs)
    relus = {n: count(s).relus for n, s in specs.items()}
    assert relus["rn18_m64"] == count(net("resnet18")).relus
    assert relus["hybrenet_16_553"] == count(net("hybrenet_16_553")).relus
    assert relus["hybrenet_32_253"] == count(net("hybrenet_32_253")).relus
    for name, budget in pf.DRS_BUDGETS.items():
        assert relus[name] <= budget
    assert relus["m16_cull_stem_s1"] < relus["m16_cull_s4"] < relus["rn18_m16"]
    assert count(specs["m16_poly_s2"]).polys > 0
    assert relus["rn10_m16"] < relus["rn18_m16"] < relus["rn34_m16"]
    quick = pf.architectures(["rn18_m16", "hybrenet_16_553"], resolution=16, divisor=4)
    assert [st.width for st in quick["rn18_m16"].stages] == [4, 8, 16, 32]
    assert [st.width for st in quick["hybrenet_16_553"].stages] == [4, 20, 100, 300]


def test_variants_change_one_setting():
    base = Fidelity(epochs=5, train_subset=600, batch_size=64, lr=0.2)
    wide, narrow = net("hybrenet_16_553"), pf.ARCHS["rn18_m8"](32, 1)
    assert pf.VARIANTS["lr_width"](wide, base, 1000).lr == pytest.approx(0.2 * math.sqrt(128 / 1200))
    assert pf.VARIANTS["lr_width"](narrow, base, 1000).lr == 0.2
    assert pf.VARIANTS["no_clip"](wide, base, 1000).grad_clip is None
    more_epochs = pf.VARIANTS["more_epochs"](wide, base, 1000)
    assert (more_epochs.epochs, more_epochs.train_subset, more_epochs.warmup_epochs) == (10, 300, 2.0)
    assert pf.VARIANTS["more_data"](wide, base, 1000) is None                     # 3,000 > 1,000 images
    more_data = pf.VARIANTS["more_data"](wide, base, 5000)
    assert (more_data.epochs, more_data.train_subset, more_data.warmup_epochs) == (1, 3000, pytest.approx(0.2))
    assert pf.training_images(base, 1000) == 5 * 576                               # 9 whole batches of 64
    poly = pf.ARCHS["m16_poly_s2"](32, 1)
    assert [pf.VARIANTS[v](wide, base, 1000).zero_init_residual
            for v in ("zero_init_always", "zero_init_never", "zero_init_auto")] == [True, False, "auto"]
    assert pf.VARIANTS["no_clip_relu"](wide, base, 1000).grad_clip is None
    assert pf.VARIANTS["no_clip_relu"](poly, base, 1000).grad_clip == base.grad_clip  # poly nets keep clipping
    assert pf.VARIANTS["precision_auto"](wide, base, 1000).precision == "auto"


@pytest.mark.parametrize("bf16", [True, False])
def test_variants_that_train_the_same_share_one_run(monkeypatch, bf16):
    monkeypatch.setattr(proxy_module, "bf16_supported", lambda device: bf16)    # either kind of CPU
    specs = pf.architectures(["rn18_m8", "m16_poly_s2"], resolution=16, divisor=4)
    variants = ["default", "zero_init_never", "zero_init_auto", "precision_auto", "bf16"]
    work = pf.plan(specs, Fidelity(epochs=1), Fidelity(epochs=2), variants, seeds=1, reference_seeds=1, n_train=500)
    runs, sharers = pf.distinct(work, "cpu")
    by_job = {(j.arch, j.level): [(s.arch, s.level) for s in sharers[j]] for j, _, _ in runs}
    # precision auto is the default; it trains as the bf16 variant only where the CPU has bf16 units; auto zero-init
    # is "never" for an all-ReLU net, else "always"
    same_as_default = ["precision_auto", "bf16"] if bf16 else ["precision_auto"]
    assert by_job[("rn18_m8", "default")] == [("rn18_m8", v) for v in ["default", *same_as_default]]
    assert by_job[("rn18_m8", "zero_init_never")] == [("rn18_m8", "zero_init_never"), ("rn18_m8", "zero_init_auto")]
    assert by_job[("m16_poly_s2", "default")] == [("m16_poly_s2", v)
                                                  for v in ["default", "zero_init_auto", *same_as_default]]
    distinct = 3 if bf16 else 4
    assert len(runs) == 2 * distinct and sum(len(v) for v in sharers.values()) == len(work) == 2 * 6


def test_cpu_full_scale_spans_narrow_to_hybrenet_with_a_5x_reference():
    scale = pf.SCALES["cpu-full"]
    specs = pf.architectures(scale["archs"], scale["resolution"], scale["divisor"])
    assert len(specs) >= 8 and {"rn18_m8", "hybrenet_16_553"} <= set(specs)
    assert sum(has_non_relu_site(s) for s in specs.values()) >= 2                  # "auto" differs from "never"
    assert count(specs["hybrenet_16_553"]).macs > 1e9 and all(s.resolution == 32 for s in specs.values())
    preset = pf.PRESETS["fashion_mnist"]
    proxy, reference = (Fidelity(**{**preset[k], **scale[k]}) for k in ("proxy", "reference"))
    ratio = pf.training_images(reference, 54_000) / pf.training_images(proxy, 54_000)
    assert ratio >= pf.MIN_RATIO == 5
    assert set(scale["variants"]) <= set(pf.VARIANTS)


def test_plan_orders_references_first_and_skips_inapplicable_variants():
    specs = pf.architectures(["rn18_m8", "rn18_m16"], resolution=16, divisor=4)
    work = pf.plan(specs, Fidelity(epochs=2), Fidelity(epochs=20), ["default", "more_data"], seeds=2,
                   reference_seeds=2, n_train=500)
    levels = [(j.arch, j.level, j.seed) for j, _, _ in work]
    assert levels[:2] == [("rn18_m16", "reference", 0), ("rn18_m8", "reference", 0)]   # most MACs first
    assert levels[-2:] == [("rn18_m16", "reference", 1), ("rn18_m8", "reference", 1)]
    assert sum(level == "default" for _, level, _ in levels) == 4
    assert not any(level == "more_data" for _, level, _ in levels)                      # n_train = all of train
    assert all(f.seed == j.seed for j, _, f in work)


def test_quick_mode_end_to_end_on_synthetic(tmp_path):
    out = tmp_path / "r.json"
    result = pf.main(["--dataset", "synthetic", "--quick", "--threads", "1", "--archs", "rn10_m16", "drs_15k",
                      "m16_poly_s2", "--proxy", "epochs=1", "train_subset=256", "--reference", "epochs=2",
                      "train_subset=512", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["unfinished"] == 0 and saved["runs"] == 3 * 3
    assert saved["image_ratio"] == pytest.approx(2 * 512 / 256)
    assert [r["arch"] for r in saved["rows"]] == ["rn10_m16", "drs_15k", "m16_poly_s2"]
    row = saved["rows"][0]
    assert len(row["proxy"]["default"]["seeds"]) == 2 and 0 <= row["reference"] <= 1
    s = saved["variants"]["default"]
    assert s["n"] == 3 and -1 <= s["kendall_tau"] <= 1 and 0 <= s["pareto_jaccard"] <= 1
    refs = [r["reference"] for r in saved["rows"]]
    means = [r["proxy"]["default"]["mean"] for r in saved["rows"]]
    assert s["kendall_tau"] == pytest.approx(pf.kendall_tau(means, refs), nan_ok=True)
    assert result["variants"] == saved["variants"]


def test_resume_reuses_the_runs_of_an_earlier_json(tmp_path, monkeypatch):
    out = tmp_path / "r.json"
    args = lambda val: ["--dataset", "synthetic", "--quick", "--threads", "1", "--archs", "rn10_m16",  # noqa: E731
                        "--val-subset", str(val), "--proxy", "epochs=1", "train_subset=128", "--reference",
                        "epochs=1", "train_subset=256"]
    first = pf.main([*args(50), "--out", str(out)])
    assert first["n_val"] == 50 and len(first["done"]) == 3
    trained = []
    monkeypatch.setattr(pf, "_train", lambda spec, phases: trained.append(phases) or
                        {"accuracy": 0.5, "seconds": 1.0, "status": "ok", "reason": None, "retried": False})
    again = pf.main([*args(50), "--variants", "zero_init_auto", "--resume", str(out)])
    assert [f.zero_init_residual for f in trained] == ["auto", "auto"]   # new runs (auto = never here): trained
    assert again["rows"][0]["proxy"]["default"] == first["rows"][0]["proxy"]["default"]       # resumed
    assert again["rows"][0]["reference"] == first["rows"][0]["reference"]
    assert again["rows"][0]["proxy"]["zero_init_auto"]["seeds"] == [0.5, 0.5]
    with pytest.raises(SystemExit, match="n_val is 50 there, 60 here"):
        pf.main([*args(60), "--resume", str(out)])


def test_time_limit_reports_what_finished(tmp_path, capsys):
    result = pf.main(["--dataset", "synthetic", "--quick", "--archs", "rn10_m16", "--time-limit", "0"])
    assert result["unfinished"] == result["runs"] == 3 and result["variants"] == {}
    assert "3 of 3 jobs unfinished (time limit)" in capsys.readouterr().out


def test_level1_variants_retrain_or_continue_the_proxy():
    from pisearch.data import load_dataset
    from pisearch.train import seeded_build, train_proxy

    base = Fidelity(epochs=1, train_subset=64, batch_size=32, threads=1)
    arch = pf.ARCHS["rn10_m16"](16, 4)
    assert pf.VARIANTS["level1_fresh"](arch, base, 1000).epochs == 2
    assert pf.VARIANTS["level1_warm"](arch, base, 1000) == (base, base)
    data = {"name": "synthetic", "resolution": 16, "channels": 3}
    pf._init_worker(data, "cpu", 1)
    warm = pf._train(arch, (base, base))
    model = seeded_build(arch, base)       # the same two phases by hand: the second starts where the first ended
    splits = load_dataset(**data)
    first = train_proxy(model, splits.train, splits.val, base)
    second = train_proxy(model, splits.train, splits.val, base)
    assert first.accuracy != second.accuracy   # (deterministic) so the next lines tell one phase from two
    assert warm["accuracy"] == second.accuracy
    assert pf._train(arch, base)["accuracy"] == first.accuracy
