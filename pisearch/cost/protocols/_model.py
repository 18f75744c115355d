"""The protocol model: element-wise operations, HE linear layers, a protocol, its estimate, and the registry.

phase latency = compute + bytes / bandwidth + round trips × RTT (online and offline separately); MB = 10⁶ bytes,
times in ms, per single-image inference (see :mod:`pisearch.cost.protocols` for what is and is not modelled).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from pisearch.cost.count import Cost
from pisearch.cost.network import Network, network as as_network
from pisearch.errors import UserError

MB = 1e6


@dataclass(frozen=True)
class Part:
    """One part of an estimate: latency (ms) and communication (MB) per phase."""

    online_ms: float = 0.0
    offline_ms: float = 0.0
    online_mb: float = 0.0
    offline_mb: float = 0.0

    @classmethod
    def of(cls, net: Network, *, online_s: float = 0.0, online_bytes: float = 0.0, online_rounds: float = 0.0,
           offline_s: float = 0.0, offline_bytes: float = 0.0, offline_rounds: float = 0.0) -> Part:
        """Latency = compute + bytes / bandwidth + round trips × RTT, per phase."""
        return cls(
            online_ms=online_s * 1e3 + net.transfer_ms(online_bytes) + online_rounds * net.rtt_ms,
            offline_ms=offline_s * 1e3 + net.transfer_ms(offline_bytes) + offline_rounds * net.rtt_ms,
            online_mb=online_bytes / MB,
            offline_mb=offline_bytes / MB,
        )

    def __add__(self, other: Part) -> Part:
        return Part(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Part)))


@dataclass(frozen=True)
class ElementCost:
    """Cost of one scalar element-wise protocol operation (a ReLU, a multiplication, a truncation):
    bytes and compute (µs) per element, and round trips and fixed online compute (µs) per layer (all elements of a
    layer run batched)."""

    online_bytes: float = 0.0
    offline_bytes: float = 0.0
    online_us: float = 0.0
    offline_us: float = 0.0
    online_rounds: float = 0.0
    offline_rounds: float = 0.0
    online_layer_us: float = 0.0

    def __add__(self, other: ElementCost) -> ElementCost:
        return ElementCost(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(ElementCost)))

    def part(self, n: int, layers: int, net: Network) -> Part:
        """The cost of ``n`` elements spread over ``layers`` layers."""
        if n == 0:
            return Part()
        return Part.of(net, online_s=(n * self.online_us + layers * self.online_layer_us) * 1e-6,
                       online_bytes=n * self.online_bytes,
                       online_rounds=layers * self.online_rounds, offline_s=n * self.offline_us * 1e-6,
                       offline_bytes=n * self.offline_bytes, offline_rounds=layers * self.offline_rounds)


@dataclass(frozen=True)
class LinearOp:
    """One linear layer as the protocols see it: ``c_in × h_in²`` in, ``c_out × h_out²`` out,
    ``kernel``×``kernel`` window, ``macs`` multiply-accumulates (BN: one per element)."""

    c_in: int
    c_out: int
    kernel: int
    h_in: int
    h_out: int
    macs: int

    @property
    def out_elems(self) -> int:
        return self.c_out * self.h_out**2


def linear_ops(cost: Cost, with_bn: bool) -> list[LinearOp]:
    """conv and fc layers of ``cost`` (and BN layers when ``with_bn``), in forward order."""
    ops = []
    for lc in cost.layers:
        layer = lc.layer
        if layer.kind == "bn" and with_bn:
            ops.append(LinearOp(layer.c_in, layer.c_in, 1, layer.h_in, layer.h_in, layer.c_in * layer.h_in**2))
        elif layer.kind in ("conv", "fc"):
            ops.append(LinearOp(layer.c_in, layer.c_out, layer.kernel, layer.h_in, layer.h_out, lc.macs))
    return ops


@dataclass(frozen=True)
class HELinear:
    """Homomorphic evaluation of linear layers: the client sends its input encrypted, the server computes
    on it and returns masked ciphertexts (Gazelle-style).

    ``phase``: ``offline`` (DELPHI: on a random mask, in preprocessing) or ``online``. ``degree``: ring
    degree N; ``batched``: SIMD slots in two rows of N/2 with channels packed per row (DELPHI, SCI), else
    dense coefficient packing (Cheetah). ``client_rotations``: the client sends all k² rotated copies of its
    input (DELPHI), so the server needs no rotations. ``ct_bytes``: one serialized ciphertext.
    ``ns_per_mac``: HE compute per MAC. ``share_*``: the online secret-share step of a preprocessed
    protocol (DELPHI: the client sends its masked input, the server computes on shares in plaintext).
    ``with_bn``: BN is its own HE layer (and needs its own truncation) instead of being folded into the conv.
    """

    phase: str
    degree: int
    batched: bool
    client_rotations: bool
    ct_bytes: float
    ns_per_mac: float
    rounds: float
    with_bn: bool
    share_bytes: float = 0.0
    share_ns_per_mac: float = 0.0
    share_rounds: float = 0.0

    def ciphertexts(self, channels: int, side: int) -> int:
        """Ciphertexts holding a ``channels × side²`` tensor."""
        hw = side * side
        if not self.batched:
            return math.ceil(channels * hw / self.degree)
        half = self.degree // 2
        if hw <= half:
            return math.ceil(channels / (2 * (half // hw)))
        return math.ceil(channels * math.ceil(hw / half) / 2)

    def part(self, ops: Sequence[LinearOp], net: Network) -> Part:
        """HE work (in ``phase``) plus the online secret-share step, over all ``ops``."""
        cts = sum(self.ciphertexts(op.c_in, op.h_in) * (op.kernel**2 if self.client_rotations else 1)
                  + self.ciphertexts(op.c_out, op.h_out) for op in ops)
        macs = sum(op.macs for op in ops)
        he = ElementCost(**{f"{self.phase}_us": macs * self.ns_per_mac * 1e-3,
                            f"{self.phase}_bytes": cts * self.ct_bytes, f"{self.phase}_rounds": self.rounds})
        share = ElementCost(online_us=macs * self.share_ns_per_mac * 1e-3,
                            online_bytes=sum(op.c_in * op.h_in**2 for op in ops) * self.share_bytes,
                            online_rounds=self.share_rounds)
        return (he + share).part(1, len(ops), net) if ops else Part()  # totals as one "element" over all layers


@dataclass(frozen=True)
class SharedLinear:
    """Linear layers whose input and weights are both secret-shared (SecretFlow SPU's setting), all online,
    costed per layer from measured constants (BN folded into the conv, output truncation included):

    bytes = ``layer_bytes`` + ``patch_bytes`` × c_in·k²·h_out² (the im2col patches) + ``weight_bytes`` ×
    c_in·c_out·k² + ``output_bytes`` × c_out·h_out²; compute (µs) = ``layer_us`` + ``output_ns`` × 10⁻³ ×
    c_out·h_out² + either ``ns_per_mac`` × 10⁻³ × MACs (outputs of at most ``small_side``² positions, fc layers
    included) or ``contraction_us`` × c_in·k² (larger outputs: SPU's ring matmul then costs about the same per
    element of its contraction whatever the output size); ``rounds`` round trips per layer."""

    layer_bytes: float
    patch_bytes: float
    weight_bytes: float
    output_bytes: float
    layer_us: float
    ns_per_mac: float
    contraction_us: float
    output_ns: float
    rounds: float
    small_side: int = 2
    with_bn: bool = False

    def seconds(self, op: LinearOp) -> float:
        """Compute of one layer, in seconds."""
        if op.h_out <= self.small_side:
            shape_us = self.ns_per_mac * 1e-3 * op.macs
        else:
            shape_us = self.contraction_us * op.c_in * op.kernel**2
        return (self.layer_us + self.output_ns * 1e-3 * op.out_elems + shape_us) * 1e-6

    def part(self, ops: Sequence[LinearOp], net: Network) -> Part:
        """Every layer of ``ops``."""
        nbytes = sum(self.layer_bytes + self.patch_bytes * op.c_in * op.kernel**2 * op.h_out**2
                     + self.weight_bytes * op.c_in * op.c_out * op.kernel**2 + self.output_bytes * op.out_elems
                     for op in ops)
        return Part.of(net, online_s=sum(map(self.seconds, ops)), online_bytes=nbytes,
                       online_rounds=self.rounds * len(ops))


@dataclass(frozen=True)
class Protocol:
    """A named protocol model: per-element costs of ReLU, multiplication and truncation, and its linear-layer
    model. A degree-2 polynomial costs one ``mult`` plus one ``trunc`` (rescaling the product)."""

    name: str
    summary: str
    relu: ElementCost
    mult: ElementCost
    trunc: ElementCost
    linear: HELinear | SharedLinear

    def estimate(self, cost: Cost, net: Network) -> Estimate:
        """Estimated online/offline latency and communication of one inference of ``cost`` over ``net``."""
        ops = linear_ops(cost, self.linear.with_bn)
        relu_layers = sum(1 for s in cost.sites if s.relus)
        poly_layers = sum(1 for s in cost.sites if s.polys)
        parts = {
            "relu": self.relu.part(cost.relus, relu_layers, net),
            "poly": (self.mult + self.trunc).part(cost.polys, poly_layers, net),
            "trunc": self.trunc.part(sum(op.out_elems for op in ops), len(ops), net),
            "linear": self.linear.part(ops, net),
        }
        return Estimate(self.name, net, parts)


@dataclass(frozen=True)
class Estimate:
    """Estimated cost of one single-image inference under one protocol and network.

    ``latency_ms`` = ``online_ms``: wall time from the client's input to its prediction, preprocessing done
    (the study objective). ``comm_mb`` = ``online_mb + offline_mb``: every byte both parties exchange,
    preprocessing included (the study objective). ``total_ms`` = online + offline latency.
    """

    protocol: str
    network: Network
    parts: dict[str, Part]

    def _sum(self, attr: str) -> float:
        return sum(getattr(p, attr) for p in self.parts.values())

    @property
    def online_ms(self) -> float:
        return self._sum("online_ms")

    @property
    def offline_ms(self) -> float:
        return self._sum("offline_ms")

    @property
    def online_mb(self) -> float:
        return self._sum("online_mb")

    @property
    def offline_mb(self) -> float:
        return self._sum("offline_mb")

    @property
    def latency_ms(self) -> float:
        """Online latency in ms (see class docstring)."""
        return self.online_ms

    @property
    def comm_mb(self) -> float:
        """Online + offline communication in MB (10⁶ bytes)."""
        return self.online_mb + self.offline_mb

    @property
    def total_ms(self) -> float:
        return self.online_ms + self.offline_ms

    def to_dict(self) -> dict:
        """``online_ms, offline_ms, latency_ms, total_ms, online_mb, offline_mb, comm_mb`` (floats), the
        ``protocol`` and ``network`` used, and ``breakdown``: the same per part (relu, poly, trunc, linear)."""
        totals = {k: getattr(self, k) for k in
                  ("online_ms", "offline_ms", "latency_ms", "total_ms", "online_mb", "offline_mb", "comm_mb")}
        breakdown = {name: {f.name: getattr(p, f.name) for f in fields(Part)} for name, p in self.parts.items()}
        return {**totals, "protocol": self.protocol, "network": self.network.to_dict(), "breakdown": breakdown}


PROTOCOLS: dict[str, Callable[[], Protocol]] = {}


def register_protocol(fn: Callable[[], Protocol]) -> Callable[[], Protocol]:
    """Register a protocol-model constructor under its function name."""
    PROTOCOLS[fn.__name__] = fn
    return fn


def protocol(name: str) -> Protocol:
    """The protocol model registered as ``name`` (``delphi``, ``sci``, ``cheetah``)."""
    return _lookup(name)


def _lookup(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UserError(f"protocol: unknown {name!r} (known: {', '.join(PROTOCOLS)})")
    return PROTOCOLS[name]()


def estimate(cost: Cost, protocol: str | Protocol = "delphi", network: str | Network = "lan") -> Estimate:
    """Estimated latency (ms) and communication (MB) of one inference of ``cost`` under a protocol
    (name or model) over a network (``lan``, ``wan`` or a :class:`Network`)."""
    model = protocol if isinstance(protocol, Protocol) else _lookup(protocol)
    return model.estimate(cost, as_network(network))
