"""Exact PI cost of specs and protocol estimates from it (imports only ``pisearch.spec``)."""

from pisearch.cost.count import Cost, LayerCost, SiteCost, count
from pisearch.cost.protocols import PROTOCOLS, Estimate, estimate, protocol, register_protocol

__all__ = ["PROTOCOLS", "Cost", "Estimate", "LayerCost", "SiteCost", "count", "estimate", "protocol",
           "register_protocol"]
