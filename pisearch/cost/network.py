"""Network settings for protocol latency estimates: bandwidth and round-trip time.

The two presets are the settings of Cheetah's throttle script (``scripts/throttle.sh`` in
``Alibaba-Gemini-Lab/OpenCheetah``) [code]: ``lan`` = ``tc … tbf rate 3000mbit`` plus ``netem delay 0.15msec``
on the loopback device (≈3 Gbps, ≈0.3 ms ping), ``wan`` = ``rate 400mbit`` plus ``delay 20msec`` (≈400 Mbps,
≈40 ms ping). The delay applies on each pass through the device, so the ping (round trip) is twice it.
Both directions share the one throttled link, so all bytes of both parties count against one bandwidth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pisearch.errors import UserError


@dataclass(frozen=True)
class Network:
    """A link between client and server: ``bandwidth_mbps`` (10⁶ bit/s, shared by both directions) and
    ``rtt_ms`` (round-trip time in milliseconds)."""

    name: str
    bandwidth_mbps: float
    rtt_ms: float

    def __post_init__(self) -> None:
        if not self.bandwidth_mbps > 0:
            raise UserError(f"network {self.name}: bandwidth_mbps must be > 0, got {self.bandwidth_mbps}")
        if not self.rtt_ms >= 0:
            raise UserError(f"network {self.name}: rtt_ms must be >= 0, got {self.rtt_ms}")

    def transfer_ms(self, nbytes: float) -> float:
        """Milliseconds to push ``nbytes`` bytes through the link (no latency term)."""
        return nbytes * 8 / (self.bandwidth_mbps * 1e6) * 1e3

    def to_dict(self) -> dict:
        return asdict(self)


NETWORKS: dict[str, Network] = {
    "lan": Network("lan", bandwidth_mbps=3000.0, rtt_ms=0.3),
    "wan": Network("wan", bandwidth_mbps=400.0, rtt_ms=40.0),
}


def network(spec: str | Network, bandwidth_mbps: float | None = None, rtt_ms: float | None = None) -> Network:
    """A preset by name (``lan``, ``wan``) or a given :class:`Network`, with bandwidth / RTT overridden when
    given (the result is then named ``custom``)."""
    if isinstance(spec, Network):
        base = spec
    elif spec in NETWORKS:
        base = NETWORKS[spec]
    else:
        raise UserError(f"network: unknown {spec!r} (known: {', '.join(NETWORKS)})")
    if bandwidth_mbps is None and rtt_ms is None:
        return base
    return Network(
        "custom",
        base.bandwidth_mbps if bandwidth_mbps is None else bandwidth_mbps,
        base.rtt_ms if rtt_ms is None else rtt_ms,
    )
