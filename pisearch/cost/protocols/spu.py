"""SecretFlow SPU's protocols as ``pisearch measure`` runs them: Cheetah and SEMI2K (two parties) and ABY3 (three),
over the 64-bit ring (FM64, 18 fraction bits), with the input **and the weights** secret-shared, everything online.

Every constant is [measured]: a non-negative least-squares fit by ``benchmarks/cost_model_vs_spu.py --fit`` to SPU
0.9.5's per-layer figures of 24 quickstart-space designs (16² and 32²; results/cost_model_vs_spu.md names the machine
and the date). Bytes are party 0's sent + received (all traffic under two parties; party 0's links under ABY3);
compute is the process CPU time of all parties in SPU's single-process simulator on that machine; round trips are the
messages party 0 sends per layer (an upper bound on round trips). A ReLU includes SPU's select after the comparison,
a polynomial its two secret multiplications (secret coefficients) and truncations, a linear layer its truncation.
A linear layer's compute follows the shape of SPU's ring matmul (:class:`SharedLinear`): per MAC when its output
has at most 2×2 positions, else per element of its contraction c_in·k², plus a term per output element.
"""

from __future__ import annotations

from pisearch.cost.protocols._model import ElementCost, Protocol, SharedLinear, register_protocol


def _spu(name: str, summary: str, relu: ElementCost, poly: ElementCost, linear: SharedLinear) -> Protocol:
    """An SPU protocol model: a polynomial costs ``poly`` (``mult``; truncations are inside each part's figures)."""
    return Protocol(name=name, summary=summary, relu=relu, mult=poly, trunc=ElementCost(), linear=linear)


@register_protocol
def spu_cheetah() -> Protocol:
    """SPU's Cheetah: HE (coefficient-packed) products of secret shares for conv / fc, silent-OT (Ferret)
    comparison and truncation."""
    return _spu("spu_cheetah", "SecretFlow SPU 0.9.5 Cheetah, input and weights secret-shared (measured)",
                ElementCost(online_bytes=98.5, online_us=17.1, online_layer_us=7365.0, online_rounds=20.0),
                ElementCost(online_bytes=462.4, online_us=16.3, online_layer_us=19870.0, online_rounds=10.0),
                SharedLinear(layer_bytes=1.105e6, patch_bytes=5.88, weight_bytes=0.177, output_bytes=16.4,
                             layer_us=53690.0, ns_per_mac=748.7, contraction_us=2156.0,
                             output_ns=69630.0, rounds=4.0))


@register_protocol
def spu_semi2k() -> Protocol:
    """SPU's SEMI2K: additive sharing over Z_2^64 with Beaver triples from a trusted first party's seeds."""
    return _spu("spu_semi2k", "SecretFlow SPU 0.9.5 SEMI2K, input and weights secret-shared (measured)",
                ElementCost(online_bytes=144.0, online_us=2.28, online_layer_us=7528.0, online_rounds=8.0),
                ElementCost(online_bytes=80.0, online_us=0.833, online_layer_us=10350.0, online_rounds=4.0),
                SharedLinear(layer_bytes=0.0, patch_bytes=13.7, weight_bytes=27.5, output_bytes=0.0,
                             layer_us=0.0, ns_per_mac=49.6, contraction_us=480.6, output_ns=4403.0, rounds=2.0))


@register_protocol
def spu_aby3() -> Protocol:
    """SPU's ABY3: three-party replicated sharing over Z_2^64."""
    return _spu("spu_aby3", "SecretFlow SPU 0.9.5 ABY3 (3 parties), input and weights secret-shared (measured)",
                ElementCost(online_bytes=104.0, online_us=2.96, online_layer_us=11300.0, online_rounds=11.0),
                ElementCost(online_bytes=72.6, online_us=1.41, online_layer_us=11920.0, online_rounds=5.0),
                SharedLinear(layer_bytes=0.0, patch_bytes=0.153, weight_bytes=0.0, output_bytes=33.7,
                             layer_us=0.0, ns_per_mac=23.1, contraction_us=504.3, output_ns=5883.0, rounds=3.0))
