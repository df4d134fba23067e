"""The shared ledger: PostgreSQL, for several Helios processes writing one history.

psycopg 3's async API on a small connection pool, so nothing blocks the event loop. The
tables and named migrations are those of SQLite (:mod:`.migrations`), with ``JSONB``
bodies. ``schema`` puts the tables in their own PostgreSQL schema (created on open; tests
use a fresh one each), selected through the connections' ``search_path``. Without one, the
first schema of a ``search_path`` the URL sets (``?options=-csearch_path%3Dhelios``) is
used, else ``public``; the URL's other ``options`` (``-c statement_timeout=...``) are kept.

Several processes, one ledger:

- migrations run under a transaction-scoped advisory lock, so two processes opening a
  new ledger at once apply each migration exactly once;
- every append (and every override with its ``flag_changed`` event) takes another
  advisory lock for its transaction, so batches commit one after another: a batch's ids
  are contiguous, never interleaved with another process's, and ids grow in commit order
  (a reader that has seen id ``n`` will not later find a new row below it).

An unreachable server fails the first operation within ``connect_timeout_s`` with a
:class:`LedgerError` naming host, port and database, never the password.

JSONB cannot hold the NUL character, which SQLite stores; here it is written as U+FFFD.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from helios.errors import ConfigError, LedgerError
from helios.ledger.codec import (
    decode_event,
    decode_flag_value,
    decode_sequenced,
    encode_event,
    encode_flag_value,
    event_filter,
    task_row,
)
from helios.ledger.events import Event, FlagChanged, FlagValue
from helios.ledger.migrations import MIGRATIONS_TABLE_POSTGRES, pending
from helios.ledger.store import ANY_EVENT, EventQuery, LedgerStore
from helios.ledger.task_list import TaskListQuery, TaskPage, task_list_sql
from helios.ledger.validation import check_events
from helios.ledger.window import WindowFacts, facts_from_rows, window_sql
from helios.postgres_db import connect_kwargs, location, one_line

_WINDOW_SQL = window_sql("postgres")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SEARCH_PATH = re.compile(r"(?:-c\s*|--)search_path\s*=\s*(\S+)")
_LOCK_CLASS = 0x4E1105  # first key of Helios's advisory locks; the second hashes the purpose
_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
_COPY = "COPY events (task_id, type, timestamp, version, body) FROM STDIN"
_INSERT = "INSERT INTO events (task_id, type, timestamp, version, body) VALUES (%s, %s, %s, %s, %s)"
# a JSON \u0000 escape not itself escaped (preceded by an even run of backslashes)
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


class PostgresLedgerStore(LedgerStore):
    """The ledger's tables in ``schema`` of the database at ``url``."""

    name = "postgres"

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        connect_timeout_s: float = 5.0,
        max_connections: int = 4,
    ) -> None:
        try:
            info = conninfo_to_dict(url)
        except psycopg.Error:
            # from None: the driver's message may quote the URL, password included
            raise ConfigError(
                "ledger.postgres_url is not a PostgreSQL URL"
                " (postgresql://user:password@host:port/database)"
            ) from None
        self._url_options = str(info.get("options") or "")
        schema = schema or _search_path_schema(self._url_options) or "public"
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigError(
                f"ledger schema {schema!r}: use lower-case letters, digits and '_' (at most 63)"
            )
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        self.max_connections = max_connections
        self.location = location(info)
        """``host:port/database``: what messages name (never the password)."""
        self._url = url
        self._pool: AsyncConnectionPool | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        schema: str | None = None,
        connect_timeout_s: float = 5.0,
        max_connections: int = 4,
    ) -> PostgresLedgerStore:
        """A store connected and migrated now, so that a bad URL or a server that is down
        fails at start-up; the constructor alone connects on first use."""
        store = cls(
            url,
            schema=schema,
            connect_timeout_s=connect_timeout_s,
            max_connections=max_connections,
        )
        await store._ensure_pool()
        return store

    async def append(self, events: Sequence[Event]) -> None:
        batch = list(events)
        if not batch:
            return
        check_events(batch)
        async with self._connection() as connection, connection.transaction():
            await connection.execute(_LOCK, (_LOCK_CLASS, f"append:{self.schema}"))
            async with connection.cursor().copy(_COPY) as copy:
                for event in batch:
                    # encoded row by row inside the transaction: a failure midway rolls back
                    await copy.write_row(_row(event))

    async def query(self, query: EventQuery = ANY_EVENT) -> list[Event]:
        where, params = event_filter(query, "postgres")
        async with self._connection() as connection:
            cursor = await connection.execute(
                f"SELECT id, body::text FROM events{where} ORDER BY id", params
            )
            rows: list[tuple[int, str]] = await cursor.fetchall()
        # decoding is CPU work proportional to the result: keep it off the event loop
        return await asyncio.to_thread(_decode_rows, rows)

    async def last_sequence(self) -> int:
        async with self._connection() as connection:
            cursor = await connection.execute("SELECT COALESCE(MAX(id), 0) FROM events")
            row = await cursor.fetchone()
        return 0 if row is None else int(row[0])

    async def events_after(self, sequence: int, *, limit: int = 1000) -> list[tuple[int, Event]]:
        async with self._connection() as connection:
            cursor = await connection.execute(
                "SELECT id, body::text FROM events WHERE id > %s ORDER BY id LIMIT %s",
                (sequence, max(limit, 0)),
            )
            rows: list[tuple[int, str]] = await cursor.fetchall()
        return await asyncio.to_thread(decode_sequenced, rows)

    async def count(self) -> int:
        async with self._connection() as connection:
            cursor = await connection.execute("SELECT COUNT(*) FROM events")
            row = await cursor.fetchone()
        return 0 if row is None else int(row[0])

    async def list_tasks(self, query: TaskListQuery) -> TaskPage:
        select, count, params = task_list_sql(query, "postgres")
        async with self._connection() as connection:
            cursor = await connection.execute(
                select, [*params, max(query.limit, 0), max(query.offset, 0)]
            )
            rows: list[tuple[str, str | None]] = await cursor.fetchall()
            cursor = await connection.execute(count, params)
            counted = await cursor.fetchone()
        total = 0 if counted is None else int(counted[0])
        return TaskPage([task_row(started, finished) for started, finished in rows], total)

    async def window_facts(self, since: float, until: float) -> WindowFacts:
        rows: dict[str, list[Any]] = {}
        async with self._connection() as connection:
            for name, statement in _WINDOW_SQL.items():
                cursor = await connection.execute(statement, (since, until))
                rows[name] = await cursor.fetchall()
        return facts_from_rows(**rows)

    async def set_flag_override(
        self, flag: str, value: FlagValue | None, *, actor: str, reason: str
    ) -> FlagChanged:
        async with self._connection() as connection, connection.transaction():
            # the append lock: the event's id keeps commit order, and two overrides of one
            # flag cannot both read the same ``old``
            await connection.execute(_LOCK, (_LOCK_CLASS, f"append:{self.schema}"))
            cursor = await connection.execute(
                "SELECT value::text FROM flag_overrides WHERE flag = %s", (flag,)
            )
            row = await cursor.fetchone()
            old = None if row is None else decode_flag_value(row[0])
            event = FlagChanged(flag=flag, old=old, new=value, reason=reason, actor=actor)
            if value is None:
                await connection.execute("DELETE FROM flag_overrides WHERE flag = %s", (flag,))
            else:
                await connection.execute(
                    "INSERT INTO flag_overrides (flag, value, actor, reason, updated_at)"
                    " VALUES (%s, %s::jsonb, %s, %s, %s) ON CONFLICT (flag) DO UPDATE SET"
                    " value = excluded.value, actor = excluded.actor,"
                    " reason = excluded.reason, updated_at = excluded.updated_at",
                    (flag, encode_flag_value(value), actor, reason, event.timestamp),
                )
            await connection.execute(_INSERT, _row(event))
        return event

    async def flag_overrides(self) -> dict[str, FlagValue]:
        async with self._connection() as connection:
            cursor = await connection.execute(
                "SELECT flag, value::text FROM flag_overrides ORDER BY flag"
            )
            rows: list[tuple[str, str]] = await cursor.fetchall()
        return {flag: decode_flag_value(value) for flag, value in rows}

    async def migrations(self) -> list[str]:
        async with self._connection() as connection:
            cursor = await connection.execute("SELECT name FROM schema_migrations ORDER BY name")
            rows: list[tuple[str]] = await cursor.fetchall()
        return [name for (name,) in rows]

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
            raise LedgerError(f"PostgreSQL ledger {self.location}: {one_line(exc)}") from exc

    async def _ensure_pool(self) -> AsyncConnectionPool:
        if self._pool is not None:
            return self._pool
        async with self._open_lock:
            if self._closed:
                raise LedgerError(f"PostgreSQL ledger {self.location} is closed")
            if self._pool is None:
                await self._migrate()
                pool = AsyncConnectionPool(
                    self._url,
                    kwargs=self._connect_kwargs(),
                    min_size=1,
                    max_size=self.max_connections,
                    open=False,
                    timeout=max(10.0, 2 * self.connect_timeout_s),
                    name="helios-ledger",
                )
                try:
                    await pool.open(wait=True, timeout=self.connect_timeout_s)
                except psycopg.Error as exc:
                    await pool.close()
                    raise LedgerError(self._unreachable(exc)) from exc
                self._pool = pool
            return self._pool

    def _connect_kwargs(self) -> dict[str, Any]:
        return connect_kwargs(
            application_name="helios-ledger",
            # the URL's own options stay; of two search_path settings the last one wins
            options=f"{self._url_options} -c search_path={self.schema}".strip(),
            connect_timeout_s=self.connect_timeout_s,
        )

    async def _migrate(self) -> None:
        try:
            connection = await psycopg.AsyncConnection.connect(self._url, **self._connect_kwargs())
        except psycopg.Error as exc:
            raise LedgerError(self._unreachable(exc)) from exc
        try:
            async with connection, connection.transaction():
                await connection.execute(_LOCK, (_LOCK_CLASS, f"migrate:{self.schema}"))
                cursor = await connection.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
                )
                if await cursor.fetchone() is None:
                    await connection.execute(
                        sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema))
                    )
                await connection.execute(MIGRATIONS_TABLE_POSTGRES)
                cursor = await connection.execute("SELECT name FROM schema_migrations")
                applied = {name for (name,) in await cursor.fetchall()}
                for migration in pending(applied):
                    for statement in migration.postgres:
                        await connection.execute(statement)
                    await connection.execute(
                        "INSERT INTO schema_migrations (name, applied_at) VALUES (%s, %s)",
                        (migration.name, time.time()),
                    )
        except psycopg.Error as exc:
            raise LedgerError(
                f"PostgreSQL ledger {self.location}: migration failed: {one_line(exc)}"
            ) from exc

    def _unreachable(self, exc: BaseException) -> str:
        return f"cannot connect to the PostgreSQL ledger at {self.location}: {one_line(exc)}"


def _search_path_schema(options: str) -> str | None:
    """The first schema of a ``search_path`` that libpq ``options`` set, if any."""
    match = _SEARCH_PATH.search(options)
    if match is None:
        return None
    return match.group(1).split(",")[0].strip().strip('"') or None


def _row(event: Event) -> tuple[str, str, float, int, str]:
    body = encode_event(event)
    if "\\u0000" in body:  # rare; the regex costs several times the encoding
        body = _JSON_NUL.sub(r"\1\\ufffd", body)
    return (
        event.task_id.replace("\x00", "\ufffd"),
        event.type,
        event.timestamp,
        event.version,
        body,
    )


def _decode_rows(rows: list[tuple[int, str]]) -> list[Event]:
    return [decode_event(row_id, body) for row_id, body in rows]
