"""DELPHI (Mishra et al., USENIX Security 2020): HE preprocessing for linear layers, garbled circuits for ReLU."""

from __future__ import annotations

from pisearch.cost.protocols._model import ElementCost, HELinear, Protocol, register_protocol

# Per ReLU, measured runs of the official DELPHI code (CryptoNite artefact kvgarimella/characterizing-private-
# inference, AMD EPYC 7502; REFERENCES §5) [log/derived]: offline garbled circuit 17,072 B + OT of the client's
# input labels 2,016 B, garbling ≈31 µs (full run); online 1,184 B (the server's labels), evaluation ≈18.3 µs.
DELPHI_GC_BYTES = 17_072
DELPHI_OT_BYTES = 2_016
DELPHI_GARBLE_US = 31.0
DELPHI_ONLINE_RELU_BYTES = 1_184
DELPHI_EVAL_US = 18.3
# Field: 41-bit prime `PLAINTEXT_MODULUS = 2061584302081`, ring degree `POLY_MOD_DEGREE = 8192`
# (rust/protocols-sys/c++/src/lib/interface.h of mc2-project/delphi) [code]; shares travel as u64.
DELPHI_FIELD_BYTES = 8
DELPHI_DEGREE = 8192
# SEAL BFV ciphertext with CoeffModulus::BFVDefault(8192) = 43+43+44+44(+44 special) bits: 2 polynomials ×
# 8192 coefficients × 4 data primes × 8 B, uncompressed (SEAL's zstd may shave ≈30 %) [derived from code].
DELPHI_CT_BYTES = 2 * DELPHI_DEGREE * 4 * 8
# Beaver multiplication (rust/protocols/src/beavers_mul.rs) [code]: online each party sends its shares of
# (x − a, y − b) — 2 field elements each way, one round trip; offline the client sends Enc(a₁), Enc(b₁) and the
# server returns Enc(c₁ …) (rust/protocols-sys/c++/src/lib/triples_gen.cpp), 3 ciphertexts per 8192 triples.
# Compute of triple generation is not modelled: no per-triple timing was found in stored sources.
# DELPHI's paper table of quadratic-approximation costs was not reachable in stored copies [unverified]; the
# code-derived figures give ≈1/37 of a ReLU's online bytes and ≈1/100 of its offline bytes, matching
# REFERENCES' "roughly two orders of magnitude cheaper than a GC ReLU".
DELPHI_MULT_ONLINE_BYTES = 4 * DELPHI_FIELD_BYTES
DELPHI_MULT_OFFLINE_BYTES = 3 * DELPHI_CT_BYTES / DELPHI_DEGREE
# HE linear preprocessing of ResNet18-CIFAR (555,422,720 MACs as pisearch counts them) took ≈36 s
# multi-threaded (292 s on 1 thread) [log]; online linear layers of ResNet-32 (69,124,736 MACs) took 0.28 s
# [log]. Both give a per-MAC rate [derived].
DELPHI_HE_NS_PER_MAC = 36.0e9 / 555_422_720
DELPHI_SHARE_NS_PER_MAC = 0.28e9 / 69_124_736


@register_protocol
def delphi() -> Protocol:
    """DELPHI: linear layers preprocessed with HE (client sends encrypted masks, server returns masked
    results), ReLUs as garbled circuits garbled offline; truncation is local on field shares (free)."""
    return Protocol(
        name="delphi",
        summary="HE-preprocessed linear layers + garbled-circuit ReLUs (DELPHI, USENIX Sec 2020)",
        relu=ElementCost(online_bytes=DELPHI_ONLINE_RELU_BYTES, online_us=DELPHI_EVAL_US, online_rounds=0.5,
                         offline_bytes=DELPHI_GC_BYTES + DELPHI_OT_BYTES, offline_us=DELPHI_GARBLE_US,
                         offline_rounds=1.0),
        mult=ElementCost(online_bytes=DELPHI_MULT_ONLINE_BYTES, online_rounds=1.0,
                         offline_bytes=DELPHI_MULT_OFFLINE_BYTES, offline_rounds=1.0),
        # DELPHI rescales fixed-point products locally on each share (`signed_reduce_in_place` in
        # rust/protocols/src/quad_approx.rs) [code]: no communication.
        trunc=ElementCost(),
        linear=HELinear(phase="offline", degree=DELPHI_DEGREE, batched=True, client_rotations=True,
                        ct_bytes=DELPHI_CT_BYTES, ns_per_mac=DELPHI_HE_NS_PER_MAC, rounds=1.0, with_bn=False,
                        share_bytes=DELPHI_FIELD_BYTES, share_ns_per_mac=DELPHI_SHARE_NS_PER_MAC,
                        share_rounds=0.5),
    )
