"""Reports over finished trials (pure pandas / plotly / torch; no Optuna): Pareto fronts, the search-vs-rule
comparison, the dashboard HTML and export folders."""

from pisearch.report.compare import compare_table, highest_level, hypervolume_vs_rule, measured, trials_table
from pisearch.report.dashboard import dashboard_html
from pisearch.report.export import load_export, write_export
from pisearch.report.pareto import hypervolume_2d, pareto_front, pareto_mask

__all__ = ["compare_table", "dashboard_html", "highest_level", "hypervolume_2d", "hypervolume_vs_rule",
           "load_export", "measured", "pareto_front", "pareto_mask", "trials_table", "write_export"]
