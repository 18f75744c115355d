"""CrypTFlow2 / SCI_HE (Rathee et al., CCS 2020): HE linear layers online, IKNP-OT millionaire for non-linear
layers."""

from __future__ import annotations

from pisearch.cost.protocols._model import HELinear, Protocol, register_protocol
from pisearch.cost.protocols._ot import ELL, LAMBDA, ot_protocol

# Per-ReLU communication < λℓ + 18ℓ bits (REFERENCES §5) [unverified: the paper's table was not reachable in
# stored copies]. A count from SCI's millionaire.h (KK13 1-of-16 leaf OTs at 2λ + 32 bits, ≈λ bits per bit
# triple, two ℓ-bit OTs for the final select) gives ≈4.8 kbit at ℓ = 41, within 20 % of the bound [derived];
# the bound is used.
SCI_RELU_BYTES = (LAMBDA * ELL + 18 * ELL) / 8
# Faithful truncation (one per conv/fc/BN output element): a millionaire on ℓ bits plus OT-based selects,
# ≈ one ReLU (748 B) by the same count [derived]. Per-element bytes [calibrated]: 898 B makes ResNet50-ImageNet
# total 12.9 × Cheetah's 2.3 GB ≈ 29.7 GB [paper], the only anchor found; within 20 % of the derived count.
SCI_TRUNC_BYTES = 898.0
# Multiplication of two ℓ-bit shares by ℓ correlated OTs (Gilboa): ℓ·λ bits of IKNP columns plus ℓ(ℓ+1)/2 bits
# of messages [derived], paid to generate one square triple.
SCI_MULT_OFFLINE_BYTES = (ELL * LAMBDA + ELL * (ELL + 1) / 2) / 8
# SCI_HE's BFV context: N = 8192, CoeffModulus::Create(8192, {60, 60, 60, 49}) (SCI/src/LinearHE/utils-HE.cpp)
# [code]: 2 × 8192 × 3 data primes × 8 B per ciphertext [derived].
SCI_DEGREE = 8192
SCI_CT_BYTES = 2 * SCI_DEGREE * 3 * 8
# HE compute per MAC [calibrated]: 27 ns makes ResNet50-ImageNet over WAN 5.6 × the Cheetah estimate below,
# ≈ 13.1 min [paper: "5.6×"].
SCI_HE_NS_PER_MAC = 27.0


@register_protocol
def sci() -> Protocol:
    """CrypTFlow2's SCI_HE: Gazelle-style HE for conv/fc/BN online, OT-based ReLU and faithful truncation
    over the ring Z_2^ℓ; no preprocessing phase."""
    return ot_protocol(
        "sci", "HE linear layers + IKNP-OT millionaire ReLU/truncation (CrypTFlow2 SCI_HE, CCS 2020)",
        SCI_RELU_BYTES, SCI_TRUNC_BYTES, SCI_MULT_OFFLINE_BYTES,
        HELinear(phase="online", degree=SCI_DEGREE, batched=True, client_rotations=False, ct_bytes=SCI_CT_BYTES,
                 ns_per_mac=SCI_HE_NS_PER_MAC, rounds=1.0, with_bn=True),
    )
