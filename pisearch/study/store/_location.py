"""Where a study lives: the kind of a storage target and the URL Optuna opens for it.

Kinds (the only place in pisearch that reads a URL's scheme):

* ``sqlite:///FILE`` — one process on one machine (the default, ``runs/<name>/study.db``);
* ``postgresql+psycopg://USER:PASSWORD@HOST/DB`` or ``mysql+pymysql://…`` — a database server, for many workers on
  many machines; the only kind with heartbeats;
* ``journal:///FILE`` or a path ending in ``.log`` — Optuna's journal file, for processes sharing a file system.

Readers (dashboards, exports) also take a run folder (its ``study.db``) or a storage file by its path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import sqlalchemy.exc
from sqlalchemy.engine import make_url

from pisearch.errors import UserError

Kind = Literal["sqlite", "journal", "server"]
SQLITE_PREFIX = "sqlite:///"
JOURNAL_PREFIX = "journal:///"
SERVER_SCHEMES = ("postgresql", "mysql")
KINDS = "sqlite:///FILE, postgresql+psycopg://USER:PASSWORD@HOST/DB, mysql+pymysql://…, journal:///FILE or FILE.log"
DB_FILE = "study.db"


def display_url(url: str) -> str:
    """``url`` with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


@dataclass(frozen=True)
class Location:
    """A storage's ``url`` (as the user would write it), its ``kind``, the ``label`` that names it in messages
    (password masked) and, for a file storage, its ``path``."""

    url: str
    kind: Kind
    label: str
    path: Path | None = None

    @property
    def run_dir(self) -> Path | None:
        """The folder of a file storage (where its run's ``artifacts/`` live); None for a server."""
        return None if self.path is None else self.path.parent

    @property
    def heartbeats(self) -> bool:
        """Whether the storage tracks live trials by heartbeat (database servers only)."""
        return self.kind == "server"

    def reader_url(self) -> str:
        """The URL a reader opens: a SQLite file in read-only mode (a reader never writes), else ``url``."""
        if self.kind == "sqlite" and self.path is not None:
            return f"sqlite:///file:{quote(str(self.path.resolve()))}?mode=ro&uri=true"
        return self.url


def locate(url: str) -> Location:
    """The location of a storage URL (or a ``.log`` journal path) that a study is created in or run on."""
    shown = display_url(url)
    if url.startswith(JOURNAL_PREFIX) or ("://" not in url and url.endswith(".log")):
        path = Path(url.removeprefix(JOURNAL_PREFIX))
        return Location(f"{JOURNAL_PREFIX}{path.as_posix()}", "journal", shown, path)
    if url.startswith(SQLITE_PREFIX):
        database = url.removeprefix(SQLITE_PREFIX)
        return Location(url, "sqlite", shown, None if database in ("", ":memory:") else Path(database))
    if url.split("+", 1)[0].split(":", 1)[0] in SERVER_SCHEMES:
        return Location(url, "server", shown)
    raise UserError(f"storage {shown}: unknown kind of storage URL (expected {KINDS})")


def run_folder(name: str, out_dir: str | Path | None = None) -> Path:
    """A study's run folder: ``out_dir`` when given, else ``runs/<name>`` (relative to the working directory)."""
    return Path(out_dir) if out_dir else Path("runs") / name


def default_location(out_dir: Path) -> Location:
    """The default storage of a run folder: ``<out_dir>/study.db``."""
    return locate(f"{SQLITE_PREFIX}{(out_dir / DB_FILE).as_posix()}")


def locate_existing(target: str | Path) -> Location:
    """The location of an existing study storage named by a run folder (its ``study.db``), a storage file
    (``.log``: journal, else SQLite) or a storage URL; a missing folder or file raises a one-line
    :class:`UserError`."""
    text = str(target)
    if "://" in text:
        location = locate(text)
        if location.path is not None and not location.path.is_file():
            raise UserError(f"{location.label}: no such storage file {location.path}")
        return location
    path = Path(text)
    if path.is_dir():
        if not (path / DB_FILE).is_file():
            raise UserError(f"{text}: not a run folder (no {DB_FILE} in it; for a run on another storage pass its "
                            "URL and --study)")
        path = path / DB_FILE
    elif not path.is_file():
        raise UserError(f"{text}: no such run folder, storage file or storage URL")
    location = locate(str(path) if path.suffix == ".log" else f"{SQLITE_PREFIX}{path.as_posix()}")
    return Location(location.url, location.kind, text, location.path)
