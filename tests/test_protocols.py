"""Protocol cost model: paper anchors (REFERENCES §5), structure of the estimate, monotonicity, CLI columns.

Anchor figures below are the published numbers, not outputs of the model; each test states its tolerance.
"""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

import pisearch.cost.protocols as protocols_mod
from pisearch.cost import count
from pisearch.cost.network import NETWORKS, Network, network
from pisearch.cost.protocols import PROTOCOLS, Estimate, HELinear, estimate, protocol, register_protocol
from pisearch.errors import UserError
from pisearch.spec import net, resnet

# No bandwidth or latency term: what is left of a phase's latency is its compute time.
IDEAL = Network("ideal", bandwidth_mbps=1e15, rtt_ms=0.0)
GB = 1e9


@pytest.fixture(scope="module")
def resnet18():
    return count(net("resnet18"))


@pytest.fixture(scope="module")
def resnet32():
    return count(resnet((16, 32, 64), (5, 5, 5)))


@pytest.fixture(scope="module")
def resnet50_imagenet():
    return count(net("resnet50", resolution=224, num_classes=1000, stem="imagenet"))


def test_anchor_counts(resnet18, resnet32):
    assert resnet18.relus == 557_056  # convention A, REFERENCES §1
    assert resnet32.relus == 303_104  # DELPHI's ResNet-32 (CIFAR, 3 × 5 basic blocks, 16/32/64)


# --- DELPHI: measured runs of the official code (CryptoNite artefact) --------------------------------------
def test_delphi_resnet18_gc_online_bytes_and_garbling(resnet18):
    e = estimate(resnet18, "delphi", IDEAL)
    relu = e.parts["relu"]
    # Offline: GC 9.51 GB [log] plus the OT of the client's labels (2,016 B per ReLU) -> within 1 %.
    assert relu.offline_mb * 1e6 == pytest.approx(9.51 * GB + 557_056 * 2_016, rel=0.01)
    # Online: ≈0.66 GB of labels (1,184 B per ReLU) -> within 1 %.
    assert relu.online_mb * 1e6 == pytest.approx(0.66 * GB, rel=0.01)
    # Garbling ≈17.0 s for the whole network [log]; the per-ReLU 31 µs gives 17.27 s (+1.6 %) -> within 3 %.
    assert relu.offline_ms == pytest.approx(17_000, rel=0.03)


def test_delphi_resnet32_gc_bytes_and_online_eval(resnet32):
    e = estimate(resnet32, "delphi", IDEAL)
    relu = e.parts["relu"]
    assert relu.offline_mb * 1e6 == pytest.approx(5.17 * GB + 303_104 * 2_016, rel=0.01)  # GC 5.17 GB [log]
    assert relu.online_mb == pytest.approx(359, rel=0.01)  # online ReLU bytes 359 MB [log]
    assert relu.online_ms == pytest.approx(5_500, rel=0.02)  # online ReLU evaluation 5.5 s [log] (+0.9 %)


def test_delphi_resnet18_latency_dominated_by_relus(resnet18):
    """CryptoNAS/DELPHI's premise: under GC, ReLUs dominate online latency (here ≈84 % on LAN)."""
    e = estimate(resnet18, "delphi", "lan")
    assert e.parts["relu"].online_ms > 0.75 * e.online_ms
    assert e.parts["trunc"] == protocols_mod.Part()  # DELPHI truncates shares locally


# --- Cheetah vs SCI on ResNet50-ImageNet over WAN (Cheetah's abstract) -------------------------------------
def test_cheetah_and_sci_resnet50_wan(resnet50_imagenet):
    c = estimate(resnet50_imagenet, "cheetah", "wan")
    s = estimate(resnet50_imagenet, "sci", "wan")
    assert 100_000 < c.latency_ms < 150_000  # "less than 2.5 minutes"
    assert c.comm_mb == pytest.approx(2_300, rel=0.05)  # "2.3 gigabytes"
    assert s.latency_ms / c.latency_ms == pytest.approx(5.6, rel=0.10)  # "about 5.6×"
    assert s.comm_mb / c.comm_mb == pytest.approx(12.9, rel=0.10)  # "and 12.9×"
    assert c.offline_mb == s.offline_mb == 0  # neither has a preprocessing phase without polys


def test_relu_bytes_ratio_between_ot_protocols():
    """SCI's IKNP ReLU (< λℓ + 18ℓ bits) costs ~an order of magnitude more bytes than Cheetah's silent-OT one."""
    sci, cheetah = protocol("sci").relu, protocol("cheetah").relu
    assert 5 < sci.online_bytes / cheetah.online_bytes < 20
    assert sci.online_bytes == pytest.approx((128 + 18) * 41 / 8)


# --- Polynomials are secure multiplications ---------------------------------------------------------------
@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_polys_cost_something(name, resnet18):
    spec = net("resnet18")
    all_poly = count(spec.with_acts({s.name: "poly" for s in spec.sites()}))
    e = estimate(all_poly, name, "lan")
    assert all_poly.polys == resnet18.relus and all_poly.relus == 0
    assert e.parts["poly"].online_mb > 0 and e.parts["poly"].online_ms > 0
    assert e.parts["poly"].online_mb + e.parts["poly"].offline_mb > 0.001 * resnet18.polys + 0.001


def test_delphi_polys_far_cheaper_than_relus():
    p = protocol("delphi")
    assert p.mult.online_bytes * 30 < p.relu.online_bytes
    assert p.mult.offline_bytes * 50 < p.relu.offline_bytes
    spec = net("resnet18")
    relu = estimate(count(spec), "delphi", "wan")
    poly = estimate(count(spec.with_acts({s.name: "poly" for s in spec.sites()})), "delphi", "wan")
    assert poly.latency_ms < 0.2 * relu.latency_ms and poly.comm_mb < 0.1 * relu.comm_mb


@pytest.mark.parametrize("name", ["sci", "cheetah"])
def test_ot_protocols_poly_costs_like_a_relu(name):
    """With faithful fixed-point arithmetic a polynomial pays a multiplication and a truncation; under the
    OT-based protocols that is the same order as a ReLU (no order-of-magnitude saving, unlike DELPHI)."""
    p = protocol(name)
    poly = p.mult + p.trunc
    ratio = (poly.online_bytes + poly.offline_bytes) / (p.relu.online_bytes + p.relu.offline_bytes)
    assert 0.5 < ratio < 3


# --- Shape of the model -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_monotone_in_relus_and_macs(name, resnet18):
    spec = net("resnet18")
    fewer = count(spec.with_acts({s.name: "identity" for s in spec.sites() if s.stage == "stage1"}))
    assert fewer.relus < resnet18.relus and fewer.macs == resnet18.macs
    base, less = estimate(resnet18, name, "lan"), estimate(fewer, name, "lan")
    assert less.latency_ms < base.latency_ms and less.comm_mb < base.comm_mb

    heavier = dataclasses.replace(resnet18, layers=tuple(dataclasses.replace(lc, macs=2 * lc.macs)
                                                         for lc in resnet18.layers))
    more = estimate(heavier, name, "lan")
    assert more.total_ms > base.total_ms and more.comm_mb >= base.comm_mb

    wider = estimate(count(resnet((128, 256, 512, 1024), (2, 2, 2, 2))), name, "lan")
    assert wider.latency_ms > base.latency_ms and wider.comm_mb > base.comm_mb


@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_wan_slower_than_lan_same_bytes(name, resnet18):
    lan, wan = estimate(resnet18, name, "lan"), estimate(resnet18, name, "wan")
    assert wan.online_ms > lan.online_ms and wan.total_ms > lan.total_ms
    assert wan.comm_mb == pytest.approx(lan.comm_mb)
    # The latency model is compute + bytes/bandwidth + rounds × RTT: the difference is the network terms.
    extra = wan.online_ms - lan.online_ms
    bytes_ms = NETWORKS["wan"].transfer_ms(lan.online_mb * 1e6) - NETWORKS["lan"].transfer_ms(lan.online_mb * 1e6)
    assert extra > bytes_ms


@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_to_dict_keys_and_sums(name, resnet18):
    e = estimate(resnet18, name, "wan")
    d = e.to_dict()
    json.dumps(d)
    assert d["latency_ms"] == d["online_ms"]
    assert d["comm_mb"] == pytest.approx(d["online_mb"] + d["offline_mb"])
    assert d["total_ms"] == pytest.approx(d["online_ms"] + d["offline_ms"])
    assert set(d["breakdown"]) == {"relu", "poly", "trunc", "linear"}
    for key in ("online_ms", "offline_ms", "online_mb", "offline_mb"):
        assert sum(p[key] for p in d["breakdown"].values()) == pytest.approx(d[key])
    assert d["protocol"] == name and d["network"] == {"name": "wan", "bandwidth_mbps": 400.0, "rtt_ms": 40.0}


def test_ciphertext_packing():
    rows = HELinear("online", 8192, True, False, 1.0, 0.0, 1.0, False)
    dense = dataclasses.replace(rows, batched=False)
    assert rows.ciphertexts(64, 32) == 8  # 4 channels of 32² per 4096-slot row, 2 rows
    assert rows.ciphertexts(512, 1) == 1  # an fc input vector
    assert rows.ciphertexts(3, 224) == 20  # 224² spans 13 rows per channel -> ceil(39 / 2)
    assert dense.ciphertexts(64, 32) == 8 and dense.ciphertexts(3, 224) == 19


def test_delphi_client_sends_rotated_inputs():
    """DELPHI's client encrypts k² rotations of its input; a 3×3 conv costs ~9× the input ciphertexts."""
    op = protocols_mod.LinearOp(64, 64, 3, 32, 32, 64 * 64 * 9 * 32 * 32)
    ops1 = protocols_mod.LinearOp(64, 64, 1, 32, 32, 64 * 64 * 32 * 32)
    lin = protocol("delphi").linear
    k3, k1 = lin.part([op], IDEAL).offline_mb, lin.part([ops1], IDEAL).offline_mb
    assert k3 / k1 == pytest.approx((8 * 9 + 8) / (8 + 8))


# --- Registry and networks --------------------------------------------------------------------------------
def test_registry(resnet18):
    assert {"delphi", "sci", "cheetah"} <= set(PROTOCOLS)
    with pytest.raises(UserError, match="protocol: unknown 'nope'"):
        protocol("nope")

    @register_protocol
    def free_relus():
        return dataclasses.replace(protocol("delphi"), name="free_relus", relu=protocols_mod.ElementCost())

    try:
        assert "free_relus" in PROTOCOLS
        e = estimate(resnet18, "free_relus", "lan")
        assert isinstance(e, Estimate) and e.parts["relu"].online_ms == 0
        assert e.parts["linear"] == estimate(resnet18, "delphi", "lan").parts["linear"]
    finally:
        del PROTOCOLS["free_relus"]
    assert "free_relus" not in protocols_mod.PROTOCOLS


def test_networks():
    assert NETWORKS["lan"].bandwidth_mbps == 3000 and NETWORKS["lan"].rtt_ms == 0.3
    assert NETWORKS["wan"].bandwidth_mbps == 400 and NETWORKS["wan"].rtt_ms == 40
    assert Network("x", 8.0, 0.0).transfer_ms(1e6) == pytest.approx(1000.0)  # 8 Mbit over 8 Mbit/s
    custom = network("wan", rtt_ms=10)
    assert custom == Network("custom", 400.0, 10.0) and network(custom) is custom
    with pytest.raises(UserError, match="network: unknown 'moon'"):
        network("moon")
    with pytest.raises(UserError, match="bandwidth_mbps must be > 0"):
        network("lan", bandwidth_mbps=0)


# --- CLI --------------------------------------------------------------------------------------------------
def run_cli(*args):
    env = {**os.environ, "COLUMNS": "200"}  # a wide terminal: rich does not wrap the column headers
    return subprocess.run([sys.executable, "-c", "from pisearch.cli import main; main()", *args],
                          capture_output=True, text=True, env=env)


def test_cli_protocol_columns_and_json():
    out = run_cli("count", "resnet18", "--protocol", "delphi", "--network", "wan")
    assert out.returncode == 0, out.stderr
    assert "online s" in out.stdout and "offline MB" in out.stdout and "delphi" in out.stdout
    assert "not measurements" in out.stdout.replace("\n", " ")
    out = run_cli("count", "resnet18", "-p", "all", "--network", "wan", "--rtt-ms", "20", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["relus"] == 557_056
    assert set(data["protocols"]) == set(PROTOCOLS)
    expected = estimate(count(net("resnet18")), "cheetah", network("wan", rtt_ms=20)).to_dict()
    assert data["protocols"]["cheetah"]["latency_ms"] == pytest.approx(expected["latency_ms"])
    assert data["protocols"]["sci"]["network"]["rtt_ms"] == 20


def test_cli_unknown_protocol_one_line_exit_2():
    out = run_cli("count", "resnet18", "--protocol", "nope")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and "nope" in out.stderr
