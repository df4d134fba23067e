"""API keys in PostgreSQL: one store for every Helios process of a deployment.

psycopg 3's async API on a small pool, connected on first use. The table is created under
a transaction-scoped advisory lock, so two processes opening a new store at once do not
race. ``schema`` puts the table in its own PostgreSQL schema (tests use a fresh one each).
An unreachable server fails the first operation within ``connect_timeout_s`` with a
:class:`~helios.errors.KeyStoreError` naming host, port and database, never the password.

Every operation runs under a :class:`~helios.breaker.CircuitBreaker`
(``keys.postgres_breaker``): a deadline of 250 ms once the pool is open, and after 3
connection failures or timeouts in a row operations fail at once, without touching the
network, until a probe after the cool-down. A timeout or an open circuit is a
:class:`~helios.errors.KeyStoreUnavailable` carrying when to try again, which the server
turns into a 503 with ``Retry-After``: authentication fails closed, and fast.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from helios.breaker import CircuitBreaker
from helios.config.breaker import BreakerSettings
from helios.errors import ConfigError, KeyStoreError, KeyStoreUnavailable
from helios.keys.model import ApiKey
from helios.keys.store import COLUMNS, KeyStore, Row, StoredKey, decode
from helios.postgres_db import connect_kwargs, location, one_line

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
_LOCK_CLASS = 0x4E1105  # Helios's advisory lock class (shared with the ledger)
T = TypeVar("T")
_TABLE = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    tenant TEXT NOT NULL,
    name TEXT,
    admin BOOLEAN NOT NULL,
    budget TEXT,
    rpm INTEGER,
    models TEXT,
    expires_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
)
"""


class PostgresKeyStore(KeyStore):
    name = "postgres"
    breaker: CircuitBreaker

    def __init__(
        self,
        url: str,
        *,
        schema: str = "public",
        connect_timeout_s: float = 5.0,
        breaker: BreakerSettings | None = None,
    ) -> None:
        """``breaker``: deadline and circuit breaker (default: :class:`BreakerSettings`
        with a 250 ms deadline); opening the pool has ``connect_timeout_s``."""
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigError(
                f"key store schema {schema!r}: use lower-case letters, digits and '_'"
            )
        try:
            info = conninfo_to_dict(url)
        except psycopg.Error:
            # from None: the driver's message may quote the URL, password included
            raise ConfigError(
                "keys.postgres_url is not a PostgreSQL URL"
                " (postgresql://user:password@host:port/database)"
            ) from None
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        self.location = location(info)
        self._url = url
        self._pool: AsyncConnectionPool | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False
        guard = breaker if breaker is not None else BreakerSettings(deadline_s=0.25)
        self.breaker = CircuitBreaker(
            f"PostgreSQL key store {self.location}",
            error=lambda message, retry: KeyStoreUnavailable(message, retry_after_s=retry),
            trips=_out_of_reach,
            deadline_s=guard.deadline_s,
            failures=guard.failures,
            cooldown_s=guard.cooldown_s,
        )

    async def _insert(self, row: Row) -> bool:
        return await self._guarded("insert", self._write_row(row))

    async def _write_row(self, row: Row) -> bool:
        marks = ", ".join(["%s"] * len(row))
        try:
            async with self._connection() as connection:
                await connection.execute(f"INSERT INTO api_keys ({COLUMNS}) VALUES ({marks})", row)
        except KeyStoreError as exc:
            if isinstance(exc.__cause__, pg_errors.UniqueViolation):
                return False
            raise
        return True

    async def lookup(self, key_id: str) -> StoredKey | None:
        query = f"SELECT {COLUMNS} FROM api_keys WHERE id = %s"
        rows = await self._guarded("lookup", self._fetch(query, (key_id,)))
        return decode(rows[0]) if rows else None

    async def list_keys(self) -> list[ApiKey]:
        query = f"SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
        rows = await self._guarded("list", self._fetch(query, ()))
        return [decode(row).key for row in rows]

    async def _mark_revoked(self, key_id: str, at: float) -> None:
        query = "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL"
        await self._guarded("revoke", self._fetch(query, (at, key_id), returns_rows=False))

    async def any_keys(self) -> bool:
        rows = await self._guarded("any", self._fetch("SELECT 1 FROM api_keys LIMIT 1", ()))
        return bool(rows)

    async def aclose(self) -> None:
        await self.breaker.aclose()
        async with self._open_lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _fetch(
        self, query: str, params: tuple[Any, ...], *, returns_rows: bool = True
    ) -> list[Row]:
        async with self._connection() as connection:
            cursor = await connection.execute(query, params)
            rows: list[Row] = await cursor.fetchall() if returns_rows else []
        return rows

    # -- connections -----------------------------------------------------------------------
    async def _guarded(self, what: str, operation: Coroutine[Any, Any, T]) -> T:
        """``operation`` under the breaker: its deadline once the pool is open,
        ``connect_timeout_s`` to open it."""
        opening = self._pool is None
        deadline = max(self.breaker.deadline_s, self.connect_timeout_s) if opening else None
        return await self.breaker.call(what, operation, deadline_s=deadline)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        pool = await self._ensure_pool()
        try:
            async with pool.connection() as connection:
                yield connection
        except psycopg.Error as exc:
            raise KeyStoreError(f"PostgreSQL key store {self.location}: {one_line(exc)}") from exc

    async def _ensure_pool(self) -> AsyncConnectionPool:
        if self._pool is not None:
            return self._pool
        async with self._open_lock:
            if self._closed:
                raise KeyStoreError(f"PostgreSQL key store {self.location} is closed")
            if self._pool is None:
                await self._create_table()
                pool = AsyncConnectionPool(
                    self._url,
                    kwargs=self._connect_kwargs(),
                    min_size=1,
                    max_size=2,
                    open=False,
                    timeout=max(10.0, 2 * self.connect_timeout_s),
                    name="helios-keys",
                )
                try:
                    await pool.open(wait=True, timeout=self.connect_timeout_s)
                except psycopg.Error as exc:
                    await pool.close()
                    raise KeyStoreError(self._unreachable(exc)) from exc
                self._pool = pool
            return self._pool

    def _connect_kwargs(self) -> dict[str, Any]:
        return connect_kwargs(
            application_name="helios-keys",
            options=f"-c search_path={self.schema}",
            connect_timeout_s=self.connect_timeout_s,
        )

    async def _create_table(self) -> None:
        try:
            connection = await psycopg.AsyncConnection.connect(self._url, **self._connect_kwargs())
        except psycopg.Error as exc:
            raise KeyStoreError(self._unreachable(exc)) from exc
        try:
            async with connection, connection.transaction():
                await connection.execute(_LOCK, (_LOCK_CLASS, f"keys:{self.schema}"))
                cursor = await connection.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
                )
                if await cursor.fetchone() is None:  # CREATE SCHEMA needs a privilege
                    await connection.execute(
                        sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema))
                    )
                await connection.execute(_TABLE)
        except psycopg.Error as exc:
            raise KeyStoreError(
                f"PostgreSQL key store {self.location}: cannot create its table: {one_line(exc)}"
            ) from exc

    def _unreachable(self, exc: BaseException) -> str:
        return f"cannot connect to the PostgreSQL key store at {self.location}: {one_line(exc)}"


def _out_of_reach(exc: BaseException) -> bool:
    """The client's own failure (connection refused or lost, pool timeout), not a
    statement's: what counts against the breaker."""
    cause = exc.__cause__ if isinstance(exc, KeyStoreError) else exc
    return isinstance(cause, psycopg.OperationalError) and cause.sqlstate is None
