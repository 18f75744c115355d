"""Declarative search spaces (YAML in ``search_spaces/``) sampled through Optuna's ``trial.suggest_*``."""

from pisearch.space.schema import BudgetConfig, Choice, SpaceConfig
from pisearch.space.search_space import SearchSpace

__all__ = ["BudgetConfig", "Choice", "SearchSpace", "SpaceConfig"]
