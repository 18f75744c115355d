"""Exact PI cost of specs (imports only ``pisearch.spec``)."""

from pisearch.cost.count import Cost, LayerCost, SiteCost, count

__all__ = ["Cost", "LayerCost", "SiteCost", "count"]
