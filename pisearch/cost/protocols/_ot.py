"""What the OT-based protocols (SCI, Cheetah) share: ring width, security parameter, the millionaire's shape,
and the protocol built from per-element ReLU / truncation / triple costs."""

from __future__ import annotations

import math

from pisearch.cost.protocols._model import ElementCost, HELinear, Protocol

LAMBDA = 128  # computational security parameter of the OT extensions (IKNP / Ferret) [paper]
# Ring bit width ℓ and fixed-point scale of the ResNet50 program both SCI and Cheetah ran for the anchor
# figures: `bitlength = 41`, `kScale = 12` in SCI/networks/main_resnet50.cpp of Alibaba-Gemini-Lab/OpenCheetah
# [code]. (REFERENCES notes ℓ = 37 in other SCI runs [log].)
ELL = 41
DIGIT_BITS = 4  # SCI's millionaire radix: `#define MILL_PARAM 4` in SCI/src/Millionaire/millionaire.h [code]


def millionaire_shape(bits: int) -> tuple[int, int]:
    """(leaf digits, AND gates) of SCI's millionaire protocol on ``bits``-bit inputs, as configured in
    millionaire.h: ``num_digits = ceil(bits/4)``, ``num_triples = 2·digits − 2 − log_num_digits`` [code]."""
    digits = math.ceil(bits / DIGIT_BITS)
    return digits, 2 * digits - 2 - math.floor(math.log2(digits)) - 1


def _millionaire_rounds(bits: int) -> int:
    """Round trips of one millionaire layer: leaf OTs, bit-triple generation, one per AND-tree level [derived
    from millionaire.h's traverse_and_compute_ANDs]."""
    digits, _ = millionaire_shape(bits)
    return 2 + math.ceil(math.log2(digits))


# Round trips of a ReLU / truncation layer: one millionaire on ℓ−1 bits plus the final select [derived].
OT_NONLINEAR_ROUNDS = _millionaire_rounds(ELL - 1) + 1
# Compute per ReLU / truncation element: ≈1 µs, measured for Cheetah's ReLU on localhost [log]; SCI's IKNP OTs
# do the same AES-based work per OT, so the figure is reused for SCI [unverified for SCI].
OT_NONLINEAR_US = 1.0
# Opening x − a of a square triple (a, a²): one ℓ-bit element from each party, one round trip [derived].
OT_MULT_ONLINE_BYTES = 2 * ELL / 8


def ot_protocol(name: str, summary: str, relu_bytes: float, trunc_bytes: float, triple_bytes: float,
                 linear: HELinear) -> Protocol:
    """An OT-based protocol without preprocessing (SCI, Cheetah): ReLU and truncation online, polynomial
    squares from triples generated ahead (``triple_bytes`` each) and opened online."""
    return Protocol(
        name=name,
        summary=summary,
        relu=ElementCost(online_bytes=relu_bytes, online_us=OT_NONLINEAR_US, online_rounds=OT_NONLINEAR_ROUNDS),
        mult=ElementCost(online_bytes=OT_MULT_ONLINE_BYTES, online_rounds=1.0, offline_bytes=triple_bytes,
                         offline_rounds=1.0),
        trunc=ElementCost(online_bytes=trunc_bytes, online_us=OT_NONLINEAR_US, online_rounds=OT_NONLINEAR_ROUNDS),
        linear=linear,
    )
