"""Reports over finished trials (pure pandas / plotly / torch; no Optuna): Pareto fronts, the search-vs-rule
comparison, the dashboard HTML and export folders."""

from pisearch.report.agreement import (
    MIN_CANDIDATES, MIN_TAU, agreement_of, kendall_tau_b, level_agreements, rank_agreement, rank_agreements,
    spearman_rho, spread_numbers,
)
from pisearch.report.compare import (
    SEARCHED, bin_table, compare_table, highest_level, hypervolume_vs_rule, measured, relu_sensitivity, seed_contenders,
    trials_table,
)
from pisearch.report.dashboard import dashboard_html
from pisearch.report.export import check_export_target, load_export, write_export
from pisearch.report.linearized import PROXY_TRAINED, linearized_table, proxy_trained
from pisearch.report.measurement import read_measured, write_measured  # not "measured": that name is compare.measured
from pisearch.report.pareto import hypervolume_2d, pareto_front, pareto_mask, shared_hypervolume
from pisearch.report.verdict import paired

__all__ = ["MIN_CANDIDATES", "MIN_TAU", "PROXY_TRAINED", "SEARCHED", "agreement_of", "bin_table", "check_export_target",
           "compare_table", "dashboard_html", "highest_level", "hypervolume_2d", "hypervolume_vs_rule", "kendall_tau_b",
           "level_agreements", "linearized_table", "load_export", "measured", "paired", "pareto_front", "pareto_mask",
           "proxy_trained", "rank_agreement", "rank_agreements", "read_measured", "relu_sensitivity", "seed_contenders",
           "shared_hypervolume", "spearman_rho", "spread_numbers", "trials_table", "write_export", "write_measured"]
