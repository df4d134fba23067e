"""The persistent embedded backend: one SQLite file, shared by every process that opens it.

The stdlib driver blocks, so every statement runs in a worker thread (``asyncio.to_thread``)
on one connection guarded by a lock. WAL mode lets readers in other processes carry on
while one writes; ``synchronous=NORMAL`` is durable across process crashes (a power cut
may lose the last writes, which for a cache is only a few misses). Each write is its own
``BEGIN IMMEDIATE`` transaction, so a value is stored whole or not at all and the row
count is evicted back under ``max_entries`` before another writer can see it.

The file is opened on first use, in the worker thread; ``await SQLiteBackend.open(path)``
opens it at once, so that a bad path fails at start-up rather than as cache misses.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

from helios.cache.backends.base import CacheBackend, Clock
from helios.errors import CacheBackendError
from helios.sqlite_db import SQLiteDatabase, transaction

T = TypeVar("T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS cache_entries ("
    " key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL, last_access REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS cache_entries_last_access ON cache_entries (last_access)",
    "CREATE INDEX IF NOT EXISTS cache_entries_expires_at ON cache_entries (expires_at)",
)
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_UNDER = "key >= ? AND (? IS NULL OR key < ?)"
_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)
_STAMP_STEP = 1e-6


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
    """Rows ``(key, value, expires_at, last_access)``; least recently accessed evicted first."""

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
            setup=_create_schema,
            busy_timeout_s=busy_timeout_s,
            # UnicodeError: a key with a lone surrogate cannot be stored as SQLite text
            driver_errors=(sqlite3.Error, OSError, UnicodeError),
        )

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

    async def aclose(self) -> None:
        await self._db.close()

    # -- in the worker thread -------------------------------------------------------------
    def _get(self, connection: sqlite3.Connection, key: str) -> bytes | None:
        now = self.clock()
        with transaction(connection):
            row = connection.execute(
                "SELECT value, expires_at FROM cache_entries WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            value, expires_at = row
            if expires_at is not None and expires_at <= now:
                connection.execute("DELETE FROM cache_entries WHERE key = ?", (key,))
                return None
            connection.execute(
                "UPDATE cache_entries SET last_access = ? WHERE key = ?",
                (self._stamp(connection, now), key),
            )
        return bytes(value)

    def _set(
        self, connection: sqlite3.Connection, key: str, value: bytes, ttl_s: float | None
    ) -> None:
        now = self.clock()
        with transaction(connection):
            if ttl_s is not None and ttl_s <= 0:
                connection.execute("DELETE FROM cache_entries WHERE key = ?", (key,))
                return
            connection.execute(
                "INSERT INTO cache_entries (key, value, expires_at, last_access)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " value = excluded.value, expires_at = excluded.expires_at,"
                " last_access = excluded.last_access",
                (key, value, None if ttl_s is None else now + ttl_s, self._stamp(connection, now)),
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
        coarse system clock, a frozen test clock) still evict in the order they happened."""
        (newest,) = connection.execute("SELECT MAX(last_access) FROM cache_entries").fetchone()
        return now if newest is None or now > newest else float(newest) + _STAMP_STEP


def _create_schema(connection: sqlite3.Connection) -> None:
    with transaction(connection):
        for statement in _SCHEMA:
            connection.execute(statement)
