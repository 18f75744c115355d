"""Estimated latency and communication of a spec under named private-inference protocols.

**These are estimates from published per-operation costs, not measurements.** Each protocol model turns a
:class:`~pisearch.cost.Cost` (ReLUs, degree-2 polynomials, per-layer conv/fc/BN geometry and MACs) and a
:class:`~pisearch.cost.network.Network` into an :class:`Estimate`::

    phase latency = compute + bytes / bandwidth + round trips × RTT        (online and offline separately)

summed over four parts: ``relu`` (one secure ReLU per scalar ReLU), ``poly`` (one secure multiplication per
scalar degree-2 polynomial, Beaver-triple style, plus the fixed-point truncation of the product where the
protocol pays for one — never free), ``trunc`` (one truncation per output element of every linear layer,
fixed-point arithmetic) and ``linear`` (conv / fc, and BN where the protocol evaluates it as its own layer).

Units: bytes are counted in MB = 10⁶ bytes (the papers' GB are 10⁹ bytes), times in ms, both per
single-image inference; "round trips" are per layer of an operation (all elements of a layer are batched).

One module per protocol (``delphi``, ``sci``, ``cheetah``) registers its model with ``@register_protocol``;
the shared model lives in ``_model``, what the OT-based protocols share in ``_ot``. ``spu`` registers
``spu_cheetah``, ``spu_semi2k`` and ``spu_aby3``: SecretFlow SPU's protocols as ``pisearch measure`` runs them
(input and weights secret-shared), with constants fitted to its measurements instead of read from papers.

Limits (read before trusting a number):

* Per-operation constants come from one published configuration each (machine, thread count, bit width,
  security parameter); compute time does not scale with your hardware. Where a constant was fitted to a
  whole-network figure instead of read per operation, its comment says **[calibrated]**.
* HE linear layers are costed per MAC (compute) and per ciphertext (bytes) from the layer geometry; real
  packing, padding and thread scheduling differ. Max-pooling, average pooling, the final argmax and the
  one-time key / base-OT setup are not costed (``Cost`` has no pooling table).
* Transfers and computation are not overlapped; both parties' bytes share one link.
* Marks follow ../shared/REFERENCES.md §5: [paper], [code], [log], [derived], [unverified].
"""

from pisearch.cost.protocols import cheetah, delphi, sci, spu  # noqa: F401  (each registers its protocol)
from pisearch.cost.protocols._model import (
    PROTOCOLS, ElementCost, Estimate, HELinear, LinearOp, Part, Protocol, SharedLinear, estimate, linear_ops, protocol,
    register_protocol,
)

__all__ = ["PROTOCOLS", "ElementCost", "Estimate", "HELinear", "LinearOp", "Part", "Protocol", "SharedLinear",
           "estimate", "linear_ops", "protocol", "register_protocol"]
