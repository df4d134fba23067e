"""One SQLite connection used from worker threads: what the cache and the ledger share.

The stdlib driver blocks, so every operation runs in a worker thread, one at a time under
a lock (a connection is not safe to share between threads). The file is opened on first
use, in WAL mode (readers never block the writer; several processes may share the file),
and write transactions are explicit (``BEGIN IMMEDIATE``: the write lock is taken up
front, so two processes never both read, then both fail to upgrade to writing). Driver
errors become the owner's error type, with the file named.

An owner that can live read-only (the cache: hits without stores) passes
``allow_read_only``: a file this process may not write (see :func:`writable`) is then
opened with SQLite's ``mode=ro`` (sharing the WAL index of a process that has it open),
or ``immutable=1`` where no such index exists and nothing may be created beside the file;
nothing is created, migrated or written, and :attr:`SQLiteDatabase.read_only` says so.
Immutable means another process that writes the file anyway (its owner, root) is not
seen: the entries read are those of the file as it was.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import quote

from helios.errors import HeliosError

T = TypeVar("T")
Synchronous = Literal["NORMAL", "FULL"]


class SQLiteDatabase:
    def __init__(
        self,
        path: Path,
        *,
        what: str,
        error: Callable[[str], HeliosError],
        setup: Callable[[sqlite3.Connection], None],
        synchronous: Synchronous = "NORMAL",
        pragmas: tuple[str, ...] = (),
        busy_timeout_s: float = 5.0,
        driver_errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError),
        allow_read_only: bool = False,
    ) -> None:
        """``what`` names the file in messages ("SQLite cache"); ``setup`` creates or migrates
        the schema when the file is first opened (it may read :attr:`read_only`);
        ``driver_errors`` become ``error``; ``allow_read_only``: see the module docstring."""
        self.path = path
        self.what = what
        self.error = error
        self.setup = setup
        self.synchronous = synchronous
        self.pragmas = pragmas
        self.busy_timeout_s = busy_timeout_s
        self.driver_errors = driver_errors
        self.allow_read_only = allow_read_only
        self.read_only = False
        """Whether the file was opened read-only (known once it is open)."""
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    async def run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """``operation(connection)`` in a worker thread."""
        return await asyncio.to_thread(self.run_now, operation)

    def run_now(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """``operation(connection)`` in the calling thread (for code already off the loop)."""
        with self._lock:
            try:
                return operation(self._connect())
            except self.driver_errors as exc:
                raise self.error(f"{self.what} {self.path}: {exc}") from exc

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise self.error(f"{self.what} {self.path} is closed")
        if self._connection is not None:
            return self._connection
        if self.allow_read_only and not writable(self.path):
            return self._connect_read_only()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in transaction())
        connection = sqlite3.connect(
            self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            self._enable_wal(connection)
            connection.execute(f"PRAGMA synchronous={self.synchronous}")
            for pragma in self.pragmas:
                connection.execute(pragma)
            self.setup(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _connect_read_only(self) -> sqlite3.Connection:
        uri = f"file:{quote(str(self.path.absolute()))}?mode=ro"
        shared = self.path.with_name(self.path.name + "-shm")
        if not shared.exists() and not writable(self.path.parent):
            # nobody has it open in WAL mode, and nothing may be created beside it (not
            # even by root, who could): read the file as it is
            uri += "&immutable=1"
        connection = self._open_uri(uri)
        try:
            connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            # a WAL file whose -shm cannot be opened: read it as it is
            connection.close()
            connection = self._open_uri(uri + "&immutable=1")
        try:
            connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            self.read_only = True
            self.setup(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _open_uri(self, uri: str) -> sqlite3.Connection:
        return sqlite3.connect(
            uri,
            uri=True,
            timeout=self.busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )

    def _enable_wal(self, connection: sqlite3.Connection) -> None:
        """Switch to WAL, waiting out a concurrent opener: on a new file SQLite can answer
        "database is locked" to this pragma at once, without its busy timeout."""
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)  # a worker thread: sleeping here blocks no event loop
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot use WAL journal mode (got {mode!r})")

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def writable(path: Path) -> bool:
    """Whether this process may write ``path`` (an existing file, and the directory its
    journal files go in) or create it. By the permission bits as well as by ``access(2)``:
    root passes ``access(2)`` everywhere, but a file or directory that no one may write was
    made read-only on purpose. A path whose directory does not exist yet counts as writable
    (creating it will say otherwise)."""
    targets = [path, path.parent] if path.exists() else [path.parent]
    for target in targets:
        if not target.exists():
            return True
        if not os.access(target, os.W_OK) or not stat.S_IMODE(target.stat().st_mode) & 0o222:
            return False
    return True


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, committed on success and rolled back on any error."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.rollback()
        raise
    connection.commit()
