"""Exact PI cost of specs and protocol estimates from it (imports only ``pisearch.spec`` and the leaves)."""

from pisearch.cost.count import Cost, LayerCost, SiteCost, count
from pisearch.cost.network import NETWORKS, Network, network
from pisearch.cost.protocols import PROTOCOLS, Estimate, estimate, protocol, register_protocol

__all__ = ["NETWORKS", "PROTOCOLS", "Cost", "Estimate", "LayerCost", "Network", "SiteCost", "count", "estimate",
           "network", "protocol", "register_protocol"]
