"""Optuna studies over search spaces (the only layer, with cli, that knows Optuna; storages only through
:mod:`pisearch.study.store`)."""

from pisearch.study.config import OBJECTIVES, StudyConfig, load_study_config
from pisearch.study.records import front_of, state_summary, write_reports
from pisearch.study.runner import RunResult, load_stored_study, open_study, prepare_study, run_study
from pisearch.study.store import Store, read_study, trials_frame

__all__ = ["OBJECTIVES", "RunResult", "Store", "StudyConfig", "front_of", "load_study_config", "load_stored_study",
           "open_study", "prepare_study", "read_study", "run_study", "state_summary", "trials_frame",
           "write_reports"]
