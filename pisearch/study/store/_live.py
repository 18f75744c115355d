"""Which processes run a study on a file storage right now, so that none takes another's running trials for dead.

Every process that opens a SQLite or journal file to run trials holds a shared lock on one byte of that file
(:data:`LIVE_BYTE`) for as long as it has the storage open (:class:`Live`); the kernel drops it when the process
ends, however it ends. A process may re-queue RUNNING trials as a dead run's only while it holds that byte alone
(:meth:`Live.alone`). Whether others held it when this process attached (:attr:`Live.others`) tells a ``pisearch
run`` that it joins a study another command is running. The locks are Linux's open-file-description locks (``fcntl``
``F_OFD_SETLK``): byte ranges far past SQLite's own lock bytes, kept by the open file (not by the process, so SQLite
closing its files drops none), and a shared lock is turned exclusive and back atomically, so two processes never
both see themselves alone or first. Nothing is written to the file, and no other file is made. Database servers
have heartbeats instead; where the system has no such locks, nothing here is tracked (:func:`attach` gives None).
"""

from __future__ import annotations

import fcntl
import os
import struct
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pisearch.study.store._location import Location

OFD_LOCKS = hasattr(fcntl, "F_OFD_SETLK")  # Linux ≥ 3.15
# The bytes of a storage file locked here: far past SQLite's own lock bytes (2**30 … 2**30 + 511) and any file's end.
MUTEX_BYTE = 2**40      # exclusive: one read-then-write at a time (Store.exclusive)
LIVE_BYTE = 2**40 + 1   # shared by every process running trials on the file
_attached: weakref.WeakValueDictionary[Path, Live] = weakref.WeakValueDictionary()  # this process's, by storage file


def _lock(handle: BinaryIO, byte: int, kind: int, wait: bool = False) -> bool:
    """Set an open-file-description lock of ``kind`` (``fcntl.F_RDLCK``, ``F_WRLCK``) on one ``byte`` of
    ``handle``'s file (a lock this handle holds there is replaced atomically); False when another holds a conflicting
    one, or with ``wait`` block until granted."""
    request = struct.pack("hhqqi", kind, os.SEEK_SET, byte, 1, 0)  # struct flock: type, whence, start, len, pid
    try:
        fcntl.fcntl(handle, fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK, request)
    except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: held by another
        return False
    return True


class Live:
    """This process's shared lock on :data:`LIVE_BYTE` of a storage file, taken on creation; released when the last
    reference to it goes (every :class:`~pisearch.study.store.Store` of the file closed or dropped)."""

    def __init__(self, path: Path) -> None:
        self.handle = open(path, "r+b")  # noqa: SIM115 (held while referenced; a write lock needs write access)
        weakref.finalize(self, self.handle.close)
        self.others = not _lock(self.handle, LIVE_BYTE, fcntl.F_WRLCK)  # another process has the storage open
        _lock(self.handle, LIVE_BYTE, fcntl.F_RDLCK, wait=True)  # a downgrade, or a wait while another checks

    def alone(self) -> bool:
        """Whether this process is the only one that has the storage open for running trials."""
        if not _lock(self.handle, LIVE_BYTE, fcntl.F_WRLCK):  # the shared lock stays
            return False
        _lock(self.handle, LIVE_BYTE, fcntl.F_RDLCK)
        return True


def attach(location: Location) -> Live | None:
    """This process's :class:`Live` lock on the storage file at ``location`` (shared by every store of the file this
    process opens); None for a database server, an in-memory SQLite database, a file that does not exist (yet), or
    a system without open-file-description locks."""
    if not OFD_LOCKS or location.path is None or location.kind == "server" or not location.path.is_file():
        return None
    key = location.path.resolve()
    live = _attached.get(key)
    if live is None:
        live = _attached[key] = Live(key)
    return live


@contextmanager
def mutex(path: Path) -> Iterator[None]:
    """Hold the storage file's exclusive lock (:data:`MUTEX_BYTE`; ``flock`` where there are no open-file-description
    locks) while the block runs; the kernel releases it when the block ends or the process dies."""
    with open(path, "r+b") as handle:
        if OFD_LOCKS:
            _lock(handle, MUTEX_BYTE, fcntl.F_WRLCK, wait=True)
        else:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
