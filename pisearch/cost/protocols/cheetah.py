"""Cheetah (Huang et al., USENIX Security 2022): rotation-free HE linear layers, silent-OT non-linear layers."""

from __future__ import annotations

from pisearch.cost.protocols._model import HELinear, Protocol, register_protocol
from pisearch.cost.protocols._ot import DIGIT_BITS, ELL, millionaire_shape, ot_protocol

# Non-linear layers reuse SCI's millionaire with Ferret silent OT (`USE_CHEETAH` paths of millionaire.h):
# a random OT costs ≈ nothing to extend, so a 1-of-16 leaf OT of 2-bit messages costs 16·2 bits from the
# sender plus 4 choice-correction bits; each bit triple from 2 random OTs plus opening e, f costs ≈8 bits; the
# ReLU's final select is two ℓ-bit correlated OTs (ℓ + 1 bits each way) [derived from code]: ≈70 B at ℓ = 41.
def _silent_millionaire_bits(bits: int) -> int:
    digits, ands = millionaire_shape(bits)
    return digits * (16 * 2 + DIGIT_BITS) + 8 * ands


CHEETAH_RELU_BYTES = (_silent_millionaire_bits(ELL - 1) + 2 * (ELL + 1)) / 8
# Truncation (one-bit-error variant): one ℓ-bit millionaire for the wrap bit plus an (ℓ+1)-bit B2A, ≈71 B
# [derived]; Cheetah also skips the comparison where the sign is known (after a ReLU). Per-element bytes
# [calibrated]: 46 B makes ResNet50-ImageNet total Cheetah's 2.3 GB [paper].
CHEETAH_TRUNC_BYTES = 46.0
# Multiplication: Gilboa with silent COTs: ℓ(ℓ+1)/2 bits of messages plus ℓ choice bits [derived].
CHEETAH_MULT_OFFLINE_BYTES = (ELL * (ELL + 1) / 2 + ELL) / 8
# BFV N = 4096, moduli {60, 49, 20} of which "we are not exporting the pk/ct with more than 109-bit"
# (SCI/src/cheetah/cheetah-api.cpp) [code]; inputs go out as seeded ciphertexts (one polynomial) and outputs
# are modulus-switched and truncated, both ≈ 4096 × 109 bits [derived]. BN is its own HE layer (HomBNSS,
# `BatchNorm` in SCI/src/library_fixed_uniform_cheetah.cpp) followed by a truncation [code].
CHEETAH_DEGREE = 4096
CHEETAH_CT_BYTES = CHEETAH_DEGREE * 109 / 8
# HE compute per MAC [calibrated]: 3.5 ns makes ResNet50-ImageNet over WAN ≈ 140 s, inside the paper's "less
# than 2.5 minutes" [paper]. (Per-layer logs saying "HE convolutions take seconds each" [log] came from
# another machine / thread count.)
CHEETAH_HE_NS_PER_MAC = 3.5


@register_protocol
def cheetah() -> Protocol:
    """Cheetah: coefficient-encoded HE for conv/fc/BN without rotations, silent-OT (Ferret) ReLU and
    truncation; no preprocessing phase."""
    return ot_protocol(
        "cheetah", "rotation-free HE linear layers + silent-OT ReLU/truncation (Cheetah, USENIX Sec 2022)",
        CHEETAH_RELU_BYTES, CHEETAH_TRUNC_BYTES, CHEETAH_MULT_OFFLINE_BYTES,
        HELinear(phase="online", degree=CHEETAH_DEGREE, batched=False, client_rotations=False,
                 ct_bytes=CHEETAH_CT_BYTES, ns_per_mac=CHEETAH_HE_NS_PER_MAC, rounds=1.0, with_bn=True),
    )
