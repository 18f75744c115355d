"""Reports over finished trials: Pareto fronts, comparisons, dashboards, exports."""

from pisearch.report.pareto import hypervolume_2d, pareto_front, pareto_mask

__all__ = ["hypervolume_2d", "pareto_front", "pareto_mask"]
