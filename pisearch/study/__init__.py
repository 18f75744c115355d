"""Optuna studies over search spaces (the only layer, with cli, that knows Optuna storages)."""

from pisearch.study.config import OBJECTIVES, StudyConfig, load_study_config
from pisearch.study.records import front_of, trials_frame, write_reports
from pisearch.study.runner import RunResult, open_study, run_study

__all__ = ["OBJECTIVES", "RunResult", "StudyConfig", "front_of", "load_study_config", "open_study", "run_study",
           "trials_frame", "write_reports"]
