"""Reports over finished trials (pure pandas / plotly / torch; no Optuna): Pareto fronts, the search-vs-rule
comparison, the dashboard HTML and export folders."""

from pisearch.report.compare import (
    SEARCHED, bin_table, compare_table, highest_level, hypervolume_vs_rule, measured, seed_contenders, trials_table,
)
from pisearch.report.dashboard import dashboard_html
from pisearch.report.export import check_export_target, load_export, write_export
from pisearch.report.pareto import hypervolume_2d, pareto_front, pareto_mask, shared_hypervolume
from pisearch.report.verdict import paired

__all__ = ["SEARCHED", "bin_table", "compare_table", "dashboard_html", "highest_level", "hypervolume_2d", "hypervolume_vs_rule",
           "check_export_target", "load_export", "measured", "paired", "pareto_front", "pareto_mask", "seed_contenders",
           "shared_hypervolume", "trials_table", "write_export"]
