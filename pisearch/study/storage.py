"""Open the Optuna storage a study lives in, from its URL.

* ``sqlite:///FILE`` — one process on one machine (the default, ``runs/<name>/study.db``);
* ``postgresql+psycopg://USER:PASSWORD@HOST/DB`` or ``mysql+pymysql://…`` — many workers on many machines. These
  get heartbeats: a RUNNING trial whose worker sent none for ``grace_period_s`` seconds is failed by the next
  worker that starts a trial, and re-queued once (Optuna's ``RetryHeartbeatStaleTrialCallback``); the re-run
  carries the user attr ``retry_of`` (the failed trial's number);
* ``journal:///FILE`` or a path ending in ``.log`` — Optuna's journal file, for processes sharing a file system
  (NFS); no heartbeats.

A URL that cannot be opened (no server, no driver, unknown scheme, unwritable file) raises a one-line
:class:`UserError`.
"""

from __future__ import annotations

import warnings

import optuna
import sqlalchemy.exc
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from sqlalchemy.engine import make_url

from pisearch.errors import UserError

SERVER_SCHEMES = ("postgresql", "mysql")
JOURNAL = "journal:///"
KINDS = "sqlite:///FILE, postgresql+psycopg://USER:PASSWORD@HOST/DB, mysql+pymysql://…, journal:///FILE or FILE.log"
CONNECT_TIMEOUT_S = 10  # an unreachable server is reported after this long instead of hanging


class RetryStaleOnce(RetryHeartbeatStaleTrialCallback):
    """Re-queue a heartbeat-stale trial once, with the same parameters and user attrs (so the same spec), plus
    ``retry_of``: the number of the trial it replaces."""

    def __init__(self) -> None:
        super().__init__(max_retry=1)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trial.user_attrs["retry_of"] = trial.number  # ``trial`` is Optuna's private copy: its attrs go to the re-run
        super().__call__(study, trial)


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the study's trials whose heartbeat is older than the grace period, and re-queue them (server
    storages with heartbeats; a no-op elsewhere). Workers also do this before each trial they start."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def is_server_url(url: str) -> bool:
    """Whether ``url`` names a database server (PostgreSQL, MySQL): the storages with heartbeats."""
    return url.split("+", 1)[0].split(":", 1)[0] in SERVER_SCHEMES


def display_url(url: str) -> str:
    """``url`` with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def open_storage(url: str, *, heartbeat: bool = True, heartbeat_interval_s: int = 60,
                 grace_period_s: int = 120) -> BaseStorage:
    """The Optuna storage for ``url`` (kinds in the module docstring). ``heartbeat`` (server URLs only): send a
    heartbeat every ``heartbeat_interval_s`` seconds while a trial runs, and fail-and-retry trials whose last
    heartbeat is older than ``grace_period_s`` seconds; readers (dashboards, exports) pass ``heartbeat=False``."""
    shown = display_url(url)
    journal = url.startswith(JOURNAL) or ("://" not in url and url.endswith(".log"))
    if not (journal or url.startswith("sqlite:///") or is_server_url(url)):
        raise UserError(f"storage {shown}: unknown kind of storage URL (expected {KINDS})")
    try:
        with warnings.catch_warnings():  # heartbeats and the retry callback are flagged experimental in Optuna 5
            warnings.simplefilter("ignore", ExperimentalWarning)
            if journal:
                return JournalStorage(JournalFileBackend(url.removeprefix(JOURNAL)))
            if not is_server_url(url):
                return RDBStorage(url)
            engine_kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
            if not heartbeat:
                return RDBStorage(url, engine_kwargs=engine_kwargs)
            return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval_s,
                              grace_period=grace_period_s, heartbeat_stale_trial_callback=RetryStaleOnce())
    except ImportError as err:
        raise UserError(f"storage {shown}: its database driver is not installed ({err.__cause__ or err}); install "
                        f"it with pip install 'pisearch[distributed]' (PostgreSQL) or pip install pymysql (MySQL)"
                        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError, ValueError) as err:
        first = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise UserError(f"storage {shown}: cannot open it ({type(err).__name__}: {first})") from None
