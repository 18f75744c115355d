"""Declarative search spaces (YAML in ``search_spaces/``) sampled through Optuna's ``trial.suggest_*``."""

from pisearch.space.schema import Choice, SpaceConfig
from pisearch.space.search_space import SearchSpace

__all__ = ["Choice", "SearchSpace", "SpaceConfig"]
