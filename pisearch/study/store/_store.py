"""An opened storage: studies by name and fidelity level, their trials tables, and trials whose process died."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import optuna
import pandas as pd
import sqlalchemy
import sqlalchemy.exc
from sqlalchemy import event
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from pisearch.errors import UserError
from pisearch.study.store._frames import (
    CHECK_LEVEL, RETRY_OF, base_names, check_name, concat_levels, empty_frame, level_count, level_name, level_rows,
    seeds_name, trials_frame, with_measured,
)
from pisearch.study.store._live import Live, attach, mutex
from pisearch.study.store._location import Location, locate, locate_existing

SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
CONNECT_TIMEOUT_S = 10  # an unreachable server is reported after this long instead of hanging
# A SQLite writer waits this long for another process's write lock (sqlite3's default, 5 s, lost 1 of 320 trial
# completions with 8 processes writing flat out; 60 s lost none: benchmarks/storage_writers.py).
SQLITE_BUSY_TIMEOUT_S = 60
# What reading a broken storage raises: SQLAlchemy errors (corrupted or non-database file, missing tables), an
# incompatible schema version (RuntimeError), a malformed URL (ValueError), an unreadable file (OSError).
READ_ERRORS = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, RuntimeError, ValueError,
               OSError)


def _immediate(storage: RDBStorage) -> RDBStorage:
    """Make every transaction of a SQLite storage take the write lock when it begins (BEGIN IMMEDIATE).

    Python's sqlite3 runs a transaction's SELECTs before its BEGIN, so Optuna's check-then-set of a waiting
    trial's state (SELECT … FOR UPDATE, which SQLite ignores) let two processes pop the same enqueued trial: both
    read WAITING, both wrote RUNNING, both trained it, and the second ``tell`` failed ("Cannot tell a COMPLETE
    trial", seen with ``--jobs 2``; tests/test_store_pop.py). Taking the lock at BEGIN serializes each
    read-then-write, at the price of also serializing reads (writers already waited for each other). Not for an
    in-memory database: one process, and disposing of its connection would drop it."""
    engine = storage.engine

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 issues no BEGIN of its own; SQLAlchemy's "begin" does

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections pooled while the tables were created do not carry the listeners
    return storage


def _first_line(err: BaseException) -> str:
    return (str(getattr(err, "orig", None) or err).strip().splitlines() or [""])[0]


def requeue(study: optuna.Study, trial: FrozenTrial, keep: Sequence[str]) -> None:
    """Enqueue ``trial`` again: its params, the user attrs named in ``keep`` (what names its candidate: the re-run
    trains the same candidate) and ``retry_of`` = its number. Nothing of the dead attempt (its reason, timings,
    partial results) is carried."""
    attrs = {k: trial.user_attrs[k] for k in keep if k in trial.user_attrs}
    study.enqueue_trial(trial.params, user_attrs={**attrs, RETRY_OF: trial.number})


@dataclass(frozen=True)
class RetryStaleOnce:
    """Heartbeat callback of server storages: a trial whose worker stopped sending heartbeats (Optuna has failed
    it) is enqueued again once (:func:`requeue`); a retry that goes stale too is not."""

    keep: tuple[str, ...]

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if RETRY_OF not in trial.user_attrs:
            requeue(study, trial, self.keep)


class Store:
    """One Optuna storage, opened once: its :class:`Location` and Optuna's storage object. Open it with
    :meth:`open` (to create or run studies; a file storage is then held :class:`Live` by this process) or
    :meth:`read` (dashboards, exports: SQLite read-only)."""

    def __init__(self, location: Location, storage: BaseStorage, live: Live | None = None) -> None:
        self.location = location
        self.storage = storage
        self.live = live

    @classmethod
    def open(cls, url: str, *, keep_attrs: tuple[str, ...] = (), heartbeat_interval_s: int = 60,
             grace_period_s: int = 120) -> Store:
        """Open the storage at ``url`` for writing (kinds: :mod:`pisearch.study.store`). On a server, a trial
        without a heartbeat for ``grace_period_s`` seconds (heartbeats every ``heartbeat_interval_s``) is failed
        and re-queued once with its ``keep_attrs``. A URL that cannot be opened raises a one-line UserError."""
        location = locate(url)
        retry = RetryStaleOnce(keep_attrs)
        _check_sqlite_file(location)
        with _opening(location):
            if location.kind == "journal":
                return cls(location, JournalStorage(JournalFileBackend(str(location.path))), attach(location))
            if location.kind == "sqlite":
                busy = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
                storage = RDBStorage(url, engine_kwargs=busy)
                return cls(location, storage if location.path is None else _immediate(storage), attach(location))
            return cls(location, RDBStorage(url, engine_kwargs={"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}},
                                            heartbeat_interval=heartbeat_interval_s, grace_period=grace_period_s,
                                            heartbeat_stale_trial_callback=retry))

    @staticmethod
    def attach(url: str) -> Live | None:
        """This process's :class:`Live` lock on the storage file at ``url``, taken before the storage is opened
        (``Live.others``: whether another process runs trials on it); None where :func:`attach` gives None (a server,
        a file not made yet)."""
        location = locate(url)
        with _opening(location):
            return attach(location)

    @classmethod
    def read(cls, target: str) -> Store:
        """Open an existing storage for reading: a run folder, a storage file or a URL
        (:func:`~pisearch.study.store.locate_existing`); a SQLite file is opened read-only."""
        location = locate_existing(target)
        with _opening(location), reading(location.label):
            if location.kind == "journal":
                return cls(location, JournalStorage(JournalFileBackend(str(location.path))))
            kwargs = {} if location.kind == "sqlite" else {
                "engine_kwargs": {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}}
            return cls(location, RDBStorage(location.reader_url(), skip_table_creation=True, **kwargs))

    @contextmanager
    def exclusive(self, key: str) -> Iterator[None]:
        """Hold a lock named ``key`` on this storage while the block runs, so that processes doing the same
        read-then-write (enqueue the baselines no trial holds yet) do it one after the other: a PostgreSQL
        advisory lock or MySQL's GET_LOCK on servers, a lock on a byte of the storage file otherwise (SQLite and
        journal files: :func:`~pisearch.study.store._live.mutex`, far from SQLite's own lock bytes). A lock dies
        with its process."""
        if self.location.kind == "server":
            engine = self.storage.engine
            with engine.connect() as con:
                if engine.dialect.name == "postgresql":
                    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
                    con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": digest})
                    try:
                        yield
                    finally:
                        con.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": digest})
                elif engine.dialect.name == "mysql":
                    name = hashlib.sha256(key.encode()).hexdigest()[:60]
                    con.execute(sqlalchemy.text("SELECT GET_LOCK(:n, -1)"), {"n": name})
                    try:
                        yield
                    finally:
                        con.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
                else:  # another database: no lock (its writers race as before)
                    yield
            return
        if self.location.path is None:  # in-memory SQLite: one process
            yield
            return
        with mutex(self.location.path):
            yield

    def close(self) -> None:
        """Close the storage's database connections (before its file is moved) and let go of it (:class:`Live`)."""
        engine = getattr(self.storage, "engine", None)
        if engine is not None:
            engine.dispose()
        self.live = None

    # ---- studies -------------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every study name in the storage, fidelity-level studies included."""
        with reading(self.location.label):
            return [s.study_name for s in self.storage.get_all_studies()]

    def pick(self, wanted: str | None) -> str:
        """The study to open (fidelity-level studies aside): ``wanted``, or the only one; anything else raises a
        one-line :class:`UserError` that lists the studies."""
        bases = base_names(self.names())
        label = self.location.label
        if wanted is None and len(bases) == 1:
            return bases[0]
        if wanted is None:
            raise UserError(f"{label}: holds {len(bases)} studies ({', '.join(bases) or 'none'}); name one with "
                            "--study")
        if wanted not in bases:
            raise UserError(f"{label}: no study {wanted!r} (it holds: {', '.join(bases) or 'none'})")
        return wanted

    def load(self, name: str, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
        """Study ``name`` (which must exist)."""
        with reading(self.location.label):
            return optuna.load_study(study_name=name, storage=self.storage, sampler=sampler)

    def create(self, name: str, directions: list[str], sampler: optuna.samplers.BaseSampler) -> optuna.Study:
        """Study ``name`` with ``directions``, created unless it exists (then loaded with ``sampler``)."""
        try:
            return optuna.create_study(study_name=name, storage=self.storage, directions=directions, sampler=sampler,
                                       load_if_exists=True)
        except (optuna.exceptions.StorageInternalError, ValueError) as err:
            raise UserError(f"study {name!r}: cannot open it in its storage ({type(err).__name__}: "
                            f"{_first_line(err)})") from None

    def level_study(self, name: str, level: int, directions: list[str]) -> optuna.Study:
        """The study of fidelity ``level`` ≥ 1 of study ``name`` (created on first use; its trials are enqueued,
        so its sampler never samples)."""
        return self.create(level_name(name, level), directions, optuna.samplers.RandomSampler())

    def family(self, study: optuna.Study) -> list[optuna.Study]:
        """``study`` and each of its auxiliary studies that exists: its fidelity levels, its seed runs, its check."""
        names = self.names()
        levels = level_count(names, study.study_name)
        aux = [level_name(study.study_name, lv) for lv in range(1, levels)]
        aux += [n for n in (seeds_name(study.study_name), check_name(study.study_name)) if n in names]
        return [study] + [self.load(name) for name in aux]

    def seed_runs(self, name: str) -> pd.DataFrame:
        """The seed re-trainings of study ``name`` (``compare: seeds``): one row per trial of ``<name>@seeds``
        (empty when there is none)."""
        with reading(self.location.label):
            try:
                return trials_frame(optuna.load_study(study_name=seeds_name(name), storage=self.storage))
            except KeyError:
                return empty_frame()

    def check_frame(self, name: str) -> pd.DataFrame:
        """The fidelity-check re-trainings of study ``name`` (``fidelity_check:``): one row per trial of
        ``<name>@check``, ``number`` = the level-0 trial it re-measures (:func:`level_rows`); empty when none."""
        with reading(self.location.label):
            try:
                study = optuna.load_study(study_name=check_name(name), storage=self.storage)
            except KeyError:
                return empty_frame()
            return level_rows(study, CHECK_LEVEL)

    # ---- trials tables -------------------------------------------------------------------------------------
    def level_frame(self, name: str, level: int) -> pd.DataFrame:
        """Rows of study ``name`` measured at ``level`` (:func:`level_rows`; empty when the level study does not
        exist yet)."""
        with reading(self.location.label):
            try:
                study = optuna.load_study(study_name=level_name(name, level), storage=self.storage)
            except KeyError:
                return empty_frame()
            return level_rows(study, level)

    def trials(self, study: optuna.Study) -> pd.DataFrame:
        """One row per measurement of ``study``: its own trials (level 0), then each higher level's promotions."""
        levels = level_count(self.names(), study.study_name)
        with reading(self.location.label):
            first = level_rows(study, 0)
            attrs = study.user_attrs
        return with_measured(concat_levels([first] + [self.level_frame(study.study_name, lv)
                                                      for lv in range(1, levels)]), attrs)

    # ---- trials whose process died -------------------------------------------------------------------------
    def fail_stale(self, study: optuna.Study) -> None:
        """Server storages: fail the trials whose heartbeat is older than the grace period and re-queue them once
        (workers also do this before each trial they start). Other storages: nothing."""
        if self.location.heartbeats:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)

    def requeue_dead(self, study: optuna.Study, keep: Sequence[str],
                     only: Callable[[FrozenTrial], bool] | None = None) -> int:
        """Fail the RUNNING trials of ``study`` (those ``only`` accepts, when given) and enqueue each again
        (:func:`requeue`); returns how many. Only for trials no live process runs (on servers, heartbeats do
        this; a supervisor of local workers knows which of its workers died): without ``only``, nothing while
        another process has this file storage open (its running trials are alive; :meth:`Live.alone`)."""
        if only is None and self.live is not None and not self.live.alone():
            return 0
        dead = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if only is None or only(t)]
        for t in dead:
            study.tell(t.number, state=TrialState.FAIL)
            requeue(study, t, keep)
        return len(dead)


@dataclass(frozen=True)
class StoredStudy:
    """A study read from its storage: the study, its trials at every fidelity level, and where it lives."""

    study: optuna.Study
    trials: pd.DataFrame
    seed_runs: pd.DataFrame
    location: Location
    check_runs: pd.DataFrame | None = None  # the fidelity check's re-trainings (``Store.check_frame``)

    @property
    def user_attrs(self) -> dict:
        return self.study.user_attrs


def read_study(target: str, name: str | None = None) -> StoredStudy:
    """Study ``name`` (None: the only one) of a run folder, storage file or URL, opened without writing, with
    its trials at every fidelity level. Every failure is one :class:`UserError` line naming the target."""
    store = Store.read(target)
    study = store.load(store.pick(name))
    return StoredStudy(study, store.trials(study), store.seed_runs(study.study_name), store.location,
                       store.check_frame(study.study_name))


def _check_sqlite_file(location: Location) -> None:
    """A SQLite storage file that exists must be one (or empty: a new database); SQLite would otherwise take over
    a file of other bytes and write into it."""
    path = location.path
    if location.kind != "sqlite" or path is None:
        return
    try:
        if path.is_dir():
            raise UserError(f"storage {location.label}: {path} is a folder, expected a SQLite database file")
        if not path.exists():
            return
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as err:
        raise UserError(f"storage {location.label}: cannot read {path} ({err.strerror or err})") from None
    if head and head != SQLITE_HEADER:
        raise UserError(f"storage {location.label}: {path} is not a SQLite database; refusing to write into it")


@contextmanager
def _opening(location: Location) -> Iterator[None]:
    """Turn a failure to open a storage (no driver, no server, unwritable file) into one line."""
    try:
        with warnings.catch_warnings():  # heartbeats and their callback are flagged experimental in Optuna 5
            warnings.simplefilter("ignore", ExperimentalWarning)
            yield
    except UserError:
        raise
    except ImportError as err:
        raise UserError(f"storage {location.label}: its database driver is not installed ({err.__cause__ or err}); "
                        "install it with pip install 'pisearch[distributed]' (PostgreSQL) or pip install pymysql "
                        "(MySQL)") from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError, ValueError) as err:
        raise UserError(f"storage {location.label}: cannot open it ({type(err).__name__}: {_first_line(err)})"
                        ) from None


@contextmanager
def reading(label: str) -> Iterator[None]:
    """Turn any failure to read a storage (corrupted file, missing tables, driver, schema version) into one line."""
    try:
        yield
    except UserError:
        raise
    except READ_ERRORS as err:
        raise UserError(f"{label}: cannot read the study storage ({type(err).__name__}: {_first_line(err)})"
                        ) from None
