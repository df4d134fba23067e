"""API keys in PostgreSQL: one store for every Helios process of a deployment.

psycopg 3's async API on a small pool, connected on first use. The table is created under
a transaction-scoped advisory lock, so two processes opening a new store at once do not
race. ``schema`` puts the table in its own PostgreSQL schema (tests use a fresh one each).
An unreachable server fails the first operation within ``connect_timeout_s`` with a
:class:`~helios.errors.KeyStoreError` naming host, port and database, never the password.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from helios.errors import ConfigError, KeyStoreError
from helios.keys.model import ApiKey
from helios.keys.store import COLUMNS, KeyStore, Row, StoredKey, decode
from helios.postgres_db import connect_kwargs, location, one_line

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
_LOCK_CLASS = 0x4E1105  # Helios's advisory lock class (shared with the ledger)
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

    def __init__(self, url: str, *, schema: str = "public", connect_timeout_s: float = 5.0) -> None:
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

    async def _insert(self, row: Row) -> bool:
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
        async with self._connection() as connection:
            cursor = await connection.execute(
                f"SELECT {COLUMNS} FROM api_keys WHERE id = %s", (key_id,)
            )
            row = await cursor.fetchone()
        return None if row is None else decode(row)

    async def list_keys(self) -> list[ApiKey]:
        async with self._connection() as connection:
            cursor = await connection.execute(
                f"SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
            )
            rows = await cursor.fetchall()
        return [decode(row).key for row in rows]

    async def _mark_revoked(self, key_id: str, at: float) -> None:
        async with self._connection() as connection:
            await connection.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                (at, key_id),
            )

    async def any_keys(self) -> bool:
        async with self._connection() as connection:
            cursor = await connection.execute("SELECT 1 FROM api_keys LIMIT 1")
            return await cursor.fetchone() is not None

    async def aclose(self) -> None:
        async with self._open_lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # -- connections -----------------------------------------------------------------------
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
