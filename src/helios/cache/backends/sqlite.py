"""The persistent embedded backend: one SQLite file, shared by every process that opens it.

The stdlib driver blocks, so every statement runs in a worker thread (``asyncio.to_thread``)
on one connection guarded by a lock. WAL mode lets readers in other processes carry on
while one writes; ``synchronous=NORMAL`` is durable across process crashes (a power cut
may lose the last writes, which for a cache is only a few misses). Each write of several
statements is one ``BEGIN IMMEDIATE`` transaction, so a value is stored whole or not at all
and the row count is evicted back under ``max_entries`` before another writer can see it.

The file is opened on first use, in the worker thread; ``await SQLiteBackend.open(path)``
opens it at once, so that a bad path fails at start-up rather than as cache misses.

Two access times per row, on purpose: ``last_access`` is the eviction order (a stamp that
``set`` refreshes too and that never repeats, see ``_stamp``), ``accessed_at`` the real
time of the last hit that :class:`EntryInfo` reports. A hit writes both, and the count, in
one ``UPDATE ... RETURNING`` statement (its own transaction), so counting costs the hit
path no extra statement. Files from before the counters get their columns added on open
(no row is rewritten). A row without ``created_at`` (from such a file, or written by an
older version still sharing it) reports its eviction stamp instead, the nearest time it
kept, and the first counted hit fixes that value in place.

A file this process may not write (a read-only data directory or file: see
:func:`~helios.sqlite_db.writable`) is opened read-only rather than not at all: hits are
served (without counting them), stores are skipped with one warning, and explicit
deletions raise :class:`CacheBackendError` saying the file is read-only.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

from helios.cache.backends.base import CacheBackend, Clock, EntryInfo, check_limit
from helios.errors import CacheBackendError
from helios.sqlite_db import SQLiteDatabase, transaction

T = TypeVar("T")
logger = logging.getLogger(__name__)

_ADDED_COLUMNS = {
    "access_count": "INTEGER NOT NULL DEFAULT 0",
    "accessed_at": "REAL",
    "created_at": "REAL",
}
"""Columns newer than the first schema; ``_create_schema`` adds them to older files."""
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS cache_entries ("
    " key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL, last_access REAL NOT NULL, "
    + ", ".join(f"{column} {declaration}" for column, declaration in _ADDED_COLUMNS.items())
    + ")",
    "CREATE INDEX IF NOT EXISTS cache_entries_last_access ON cache_entries (last_access)",
    "CREATE INDEX IF NOT EXISTS cache_entries_expires_at ON cache_entries (expires_at)",
)
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_UNDER = "key >= ? AND (? IS NULL OR key < ?)"
_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)
_STAMP_STEP = 1e-6
_NEWEST = "(SELECT MAX(last_access) FROM cache_entries)"  # the last_access index answers it
# the stamp as ``_stamp`` computes it, inlined so that a hit stays one statement; a row
# without created_at (see the module docstring) keeps the stamp it had before this hit
_HIT = (
    "UPDATE cache_entries SET access_count = access_count + 1, accessed_at = :now,"
    " created_at = COALESCE(created_at, last_access),"
    f" last_access = CASE WHEN :now > {_NEWEST} THEN :now ELSE {_NEWEST} + :step END"
    " WHERE key = :key AND (expires_at IS NULL OR expires_at > :now) RETURNING value"
)
_INFO_COLUMNS = (
    "key, length(value), access_count, accessed_at, COALESCE(created_at, last_access), expires_at"
)


def _prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """``[low, high)`` holding exactly the keys that start with ``prefix``.

    A range rather than ``LIKE``/``substr`` so that the primary-key index answers it, and
    no character of the prefix needs escaping. SQLite compares text as UTF-8 bytes, which
    orders like code points, so the high bound is the prefix with its last code point
    incremented (``None``: no bound, every key above ``low``).
    """
    stem = prefix.rstrip(chr(_MAX_CODE_POINT))
    if not stem:
        return prefix, None
    following = ord(stem[-1]) + 1
    if following in _SURROGATES:
        following = _SURROGATES.stop
    return prefix, stem[:-1] + chr(following)


class SQLiteBackend(CacheBackend):
    """Rows ``(key, value, expires_at, last_access, access_count, accessed_at, created_at)``;
    least recently used (read or written) evicted first."""

    name = "sqlite"

    def __init__(
        self,
        path: Path | str,
        *,
        max_entries: int = 500,
        clock: Clock = time.time,
        busy_timeout_s: float = 5.0,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        super().__init__(clock=clock)
        self.path = Path(path)
        self.max_entries = max_entries
        self.busy_timeout_s = busy_timeout_s
        self._db = SQLiteDatabase(
            self.path,
            what="SQLite cache",
            error=CacheBackendError,
            setup=self._setup,
            busy_timeout_s=busy_timeout_s,
            # UnicodeError: a key with a lone surrogate cannot be stored as SQLite text
            driver_errors=(sqlite3.Error, OSError, UnicodeError),
            allow_read_only=True,
        )
        self._skipped_stores = 0

    @property
    def read_only(self) -> bool:
        """Whether the file was opened read-only (known once it is open)."""
        return self._db.read_only

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        max_entries: int = 500,
        clock: Clock = time.time,
        busy_timeout_s: float = 5.0,
    ) -> SQLiteBackend:
        """A backend with its file already opened; raises :class:`CacheBackendError`."""
        backend = cls(path, max_entries=max_entries, clock=clock, busy_timeout_s=busy_timeout_s)
        await backend._db.run(lambda _connection: None)
        return backend

    async def get(self, key: str) -> bytes | None:
        return await self._db.run(lambda connection: self._get(connection, key))

    async def set(self, key: str, value: bytes, *, ttl_s: float | None) -> None:
        await self._db.run(lambda connection: self._set(connection, key, bytes(value), ttl_s))

    async def delete(self, key: str) -> bool:
        def delete(connection: sqlite3.Connection) -> bool:
            self._refuse_if_read_only()
            with transaction(connection):
                cursor = connection.execute(
                    f"DELETE FROM cache_entries WHERE key = ? AND {_LIVE}", (key, self.clock())
                )
                removed = cursor.rowcount > 0
                connection.execute("DELETE FROM cache_entries WHERE key = ?", (key,))
            return removed

        return await self._db.run(delete)

    async def scan(self, prefix: str = "") -> AsyncIterator[str]:
        low, high = _prefix_bounds(prefix)
        rows = await self._db.run(
            lambda connection: connection.execute(
                f"SELECT key FROM cache_entries WHERE {_UNDER} AND {_LIVE} ORDER BY key",
                (low, high, high, self.clock()),
            ).fetchall()
        )
        for (key,) in rows:
            yield key

    async def delete_prefix(self, prefix: str) -> int:
        low, high = _prefix_bounds(prefix)

        def delete_prefix(connection: sqlite3.Connection) -> int:
            self._refuse_if_read_only()
            with transaction(connection):
                cursor = connection.execute(
                    f"DELETE FROM cache_entries WHERE {_UNDER} AND {_LIVE}",
                    (low, high, high, self.clock()),
                )
                return cursor.rowcount

        return await self._db.run(delete_prefix)

    async def count(self, prefix: str = "") -> int:
        low, high = _prefix_bounds(prefix)
        (total,) = await self._db.run(
            lambda connection: connection.execute(
                f"SELECT COUNT(*) FROM cache_entries WHERE {_UNDER} AND {_LIVE}",
                (low, high, high, self.clock()),
            ).fetchone()
        )
        return int(total)

    async def info(self, key: str) -> EntryInfo | None:
        row = await self._db.run(
            lambda connection: connection.execute(
                f"SELECT {_INFO_COLUMNS} FROM cache_entries WHERE key = ? AND {_LIVE}",
                (key, self.clock()),
            ).fetchone()
        )
        return None if row is None else _entry_info(row)

    async def entries(self, prefix: str = "", limit: int = 100) -> list[EntryInfo]:
        check_limit(limit)
        low, high = _prefix_bounds(prefix)
        rows = await self._db.run(
            lambda connection: connection.execute(
                f"SELECT {_INFO_COLUMNS} FROM cache_entries WHERE {_UNDER} AND {_LIVE}"
                " ORDER BY accessed_at IS NULL, accessed_at DESC, key LIMIT ?",
                (low, high, high, self.clock(), limit),
            ).fetchall()
        )
        return [_entry_info(row) for row in rows]

    async def aclose(self) -> None:
        await self._db.close()

    # -- in the worker thread -------------------------------------------------------------
    def _setup(self, connection: sqlite3.Connection) -> None:
        if not self._db.read_only:  # a read-only file is read as it is
            _create_schema(connection)

    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise CacheBackendError(f"SQLite cache {self.path} is read-only: nothing deleted")

    def _get(self, connection: sqlite3.Connection, key: str) -> bytes | None:
        if self.read_only:  # a hit that cannot be counted is still a hit
            row = connection.execute(
                f"SELECT value FROM cache_entries WHERE key = ? AND {_LIVE}", (key, self.clock())
            ).fetchone()
            return None if row is None else bytes(row[0])
        # an expired row is left to the next set, which purges expired rows before evicting;
        # fetchall: the statement (and so its implicit transaction) ends only when exhausted
        rows = connection.execute(
            _HIT, {"now": self.clock(), "step": _STAMP_STEP, "key": key}
        ).fetchall()
        return bytes(rows[0][0]) if rows else None

    def _set(
        self, connection: sqlite3.Connection, key: str, value: bytes, ttl_s: float | None
    ) -> None:
        if self.read_only:
            self._skipped_stores += 1
            if self._skipped_stores == 1:
                logger.warning(
                    "SQLite cache %s is read-only: serving its entries, storing nothing", self.path
                )
            return
        now = self.clock()
        with transaction(connection):
            if ttl_s is not None and ttl_s <= 0:
                connection.execute("DELETE FROM cache_entries WHERE key = ?", (key,))
                return
            # a new value is a new entry: counters start again
            connection.execute(
                "INSERT INTO cache_entries (key, value, expires_at, last_access, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " value = excluded.value, expires_at = excluded.expires_at,"
                " last_access = excluded.last_access, created_at = excluded.created_at,"
                " access_count = 0, accessed_at = NULL",
                (
                    key,
                    value,
                    None if ttl_s is None else now + ttl_s,
                    self._stamp(connection, now),
                    now,
                ),
            )
            # expired rows go first so that they never push out a live one
            connection.execute(
                "DELETE FROM cache_entries WHERE expires_at IS NOT NULL AND expires_at <= ?",
                (now,),
            )
            connection.execute(
                "DELETE FROM cache_entries WHERE key IN (SELECT key FROM cache_entries"
                " ORDER BY last_access DESC LIMIT -1 OFFSET ?)",
                (self.max_entries,),
            )

    def _stamp(self, connection: sqlite3.Connection, now: float) -> float:
        """``now``, nudged past the newest stamp so that accesses within one clock tick (a
        coarse system clock, a frozen test clock) still evict in the order they happened.
        ``_HIT`` computes the same in SQL; change both together."""
        (newest,) = connection.execute("SELECT MAX(last_access) FROM cache_entries").fetchone()
        return now if newest is None or now > newest else float(newest) + _STAMP_STEP


def _entry_info(row: tuple[str, int, int, float | None, float, float | None]) -> EntryInfo:
    key, size, count, accessed_at, created_at, expires_at = row
    return EntryInfo(
        key=key,
        size_bytes=size,
        access_count=count,
        last_access=accessed_at,
        created_at=created_at,
        expires_at=expires_at,
    )


def _create_schema(connection: sqlite3.Connection) -> None:
    # in the write transaction, so that two processes opening an old file add columns once
    with transaction(connection):
        for statement in _SCHEMA:
            connection.execute(statement)
        present = {row[1] for row in connection.execute("PRAGMA table_info(cache_entries)")}
        for column, declaration in _ADDED_COLUMNS.items():
            if column not in present:  # ADD COLUMN rewrites no rows
                connection.execute(f"ALTER TABLE cache_entries ADD COLUMN {column} {declaration}")
