"""Hand rules that map a cost budget to an architecture without search (DeepReShape's O(1) rule)."""

from pisearch.rules.deepreshape import (
    CULL_SEQUENCE, HIGH_RATIOS, HIGH_REGIME_RELUS_PER_PIXEL, LOW_RATIOS, Layout, RuleResult, deepreshape,
    deepreshape_rule, regime, rule_spec,
)

__all__ = [
    "CULL_SEQUENCE", "HIGH_RATIOS", "HIGH_REGIME_RELUS_PER_PIXEL", "LOW_RATIOS", "Layout", "RuleResult",
    "deepreshape", "deepreshape_rule", "regime", "rule_spec",
]
