"""Optuna studies over search spaces (the only layer, with cli, that knows Optuna; storages only through
:mod:`pisearch.study.store`)."""

from pisearch.study.config import OBJECTIVES, DatasetConfig, StudyConfig, load_study_config
from pisearch.study.dashboard_data import load_dashboard_data, relu_bins, write_dashboard
from pisearch.study.records import front_of, state_summary, write_reports
from pisearch.study.launch import RunResult, run_study
from pisearch.study.runner import StudyBusy, load_stored_study, open_study, prepare_study
from pisearch.study.select import open_run, pick_trial, trial_model
from pisearch.study.store import (Live, Location, Store, default_location, display_url, locate_existing,
                                  measured_records, read_study, run_folder, trials_frame)

__all__ = ["OBJECTIVES", "DatasetConfig", "Live", "Location", "RunResult", "Store", "StudyBusy", "StudyConfig",
           "default_location", "display_url", "front_of", "load_dashboard_data", "load_stored_study",
           "load_study_config", "locate_existing", "measured_records", "open_run", "open_study", "pick_trial",
           "prepare_study", "read_study", "relu_bins", "run_folder", "run_study", "state_summary", "trial_model",
           "trials_frame", "write_dashboard", "write_reports"]
