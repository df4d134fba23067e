"""The shared L3 index: one PostgreSQL table with pgvector, seen by every Helios process.

Rows are :class:`~helios.cache.backends.vector.SemanticEntry` fields plus ``embedding
vector(dim)``, with an HNSW index (``vector_cosine_ops``) for the nearest-neighbour order
and a btree on ``context`` for the filter. A search is one statement::

    WHERE context = %s AND (expires_at IS NULL OR expires_at > %s)
    ORDER BY embedding <=> %s LIMIT k

with score ``1 - distance``. PostgreSQL's planner picks the btree for a small context
(then sorts its rows exactly) and the HNSW index for a big one, which it reads in distance
order and filters; pgvector before 0.8 stops after ``hnsw.ef_search`` candidates, so a
context that is a small share of a huge table can get fewer than ``k`` rows (``ef_search``
is raised from 40 to 100 on every connection to make that rarer).

Expiry compares ``expires_at`` with the injected ``clock``, so it follows the caller's
clock; expired rows are deleted on every ``add``.

Vectors travel through the ``pgvector`` package's psycopg adapter in binary: 4 bytes per
float, exactly the embedder's float32, and no formatting of hundreds of decimals per call
(a text literal would need both). Its cost is one type lookup per new pooled connection.

The schema is created on first use (``CREATE EXTENSION IF NOT EXISTS vector``, the table
and its indexes) under an advisory lock, so several processes starting together create it
once. An unreachable server fails within ``connect_timeout_s`` with a
:class:`CacheBackendError` naming ``host:port/database`` (never the password).

Every operation runs under a :class:`~helios.breaker.CircuitBreaker`
(``cache.semantic.postgres_breaker``): a deadline of 100 ms (opening the pool, and the
statements over the whole table, ``invalidate`` and ``stats``, get ``connect_timeout_s``),
and after 3 connection failures or timeouts in a row operations fail at once, without
touching the network, until a probe after the cool-down finds the server again. A
statement the server refuses (a bad table) is an answer and does not count. A cache that
hangs or is down costs a lookup the deadline a few times, then microseconds.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from hashlib import sha256
from typing import Any, TypeVar

from helios.breaker import CircuitBreaker
from helios.cache.backends.base import Clock
from helios.cache.backends.vector import IndexStats, SemanticEntry, VectorIndex, VectorMatch
from helios.config.breaker import BreakerSettings
from helios.errors import CacheBackendError, ConfigError, MissingDependency
from helios.postgres_db import connect_kwargs, location, one_line

try:
    import numpy
    import psycopg
    from numpy.typing import NDArray
    from pgvector.psycopg import register_vector_async
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg_pool import AsyncConnectionPool
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependency("pgvector", "pgvector", "The pgvector semantic index") from exc

TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_LOCK_CLASS = 0x4E1105  # Helios's advisory lock class (as the ledger's); the key hashes the table
_COLUMNS = "entry_id, context, tenant, task_type, question, reply, created_at, expires_at"
_LIVE = "(expires_at IS NULL OR expires_at > %s)"
T = TypeVar("T")


class PgvectorIndex(VectorIndex):
    """L3 entries in ``table`` of the PostgreSQL database at ``url``."""

    name = "pgvector"
    breaker: CircuitBreaker

    def __init__(
        self,
        url: str,
        dim: int,
        *,
        table: str = "helios_semantic_cache",
        clock: Clock = time.time,
        connect_timeout_s: float = 5.0,
        max_connections: int = 4,
        ef_search: int = 100,
        breaker: BreakerSettings | None = None,
    ) -> None:
        """Connects on first use. ``table``: a plain identifier (quoted as given, so
        case-sensitive); ``ef_search``: HNSW candidates per search; ``breaker``: deadline
        and circuit breaker (default: :class:`BreakerSettings` with a 100 ms deadline)."""
        if dim < 1:
            raise ValueError("dim must be positive")
        if not TABLE_NAME.fullmatch(table):
            raise ConfigError(
                f"semantic cache table {table!r}: use letters, digits and '_' (at most 63),"
                " not starting with a digit"
            )
        try:
            info = conninfo_to_dict(url)
        except psycopg.Error:
            # from None: the driver's message may quote the URL, password included
            raise ConfigError(
                "the semantic cache's postgres_url is not a PostgreSQL URL"
                " (postgresql://user:password@host:port/database)"
            ) from None
        super().__init__(clock=clock)
        self.dim = dim
        self.table = table
        self.connect_timeout_s = connect_timeout_s
        self.max_connections = max_connections
        self.ef_search = ef_search
        self.location = location(info)
        """``host:port/database``: what messages name (never the password)."""
        guard = breaker if breaker is not None else BreakerSettings(deadline_s=0.1)
        self.breaker = CircuitBreaker(
            f"pgvector semantic index {self.location}",
            error=lambda message, _retry_after: CacheBackendError(message),
            trips=_out_of_reach,
            deadline_s=guard.deadline_s,
            failures=guard.failures,
            cooldown_s=guard.cooldown_s,
        )
        self._url = url
        self._pool: AsyncConnectionPool | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False
        self._sql = _Statements(table)

    @classmethod
    async def open(
        cls,
        url: str,
        dim: int,
        *,
        table: str = "helios_semantic_cache",
        clock: Clock = time.time,
        connect_timeout_s: float = 5.0,
        max_connections: int = 4,
        ef_search: int = 100,
        breaker: BreakerSettings | None = None,
    ) -> PgvectorIndex:
        """An index connected with its table created now, so that a bad URL or a server
        that is down fails at start-up; raises :class:`CacheBackendError`."""
        index = cls(
            url,
            dim,
            table=table,
            clock=clock,
            connect_timeout_s=connect_timeout_s,
            max_connections=max_connections,
            ef_search=ef_search,
            breaker=breaker,
        )
        await index._ensure_pool()
        return index

    async def add(self, entry: SemanticEntry, vector: NDArray[numpy.float32]) -> None:
        embedding = self._vector(vector)
        await self._guarded("add", self._add(entry, embedding))

    async def _add(self, entry: SemanticEntry, embedding: NDArray[numpy.float32]) -> None:
        async with self._connection() as connection:
            await connection.execute(
                self._sql.upsert,
                (
                    entry.entry_id,
                    entry.context,
                    entry.tenant,
                    entry.task_type,
                    entry.question,
                    bytes(entry.reply),
                    entry.created_at,
                    entry.expires_at,
                    embedding,
                ),
            )
            await connection.execute(self._sql.purge, (self.clock(),))

    async def search(
        self, context: str, vector: NDArray[numpy.float32], *, k: int
    ) -> list[VectorMatch]:
        embedding = self._vector(vector)
        if k < 1:
            raise ValueError("k must be positive")
        rows = await self._guarded(
            "search", self._fetch(self._sql.search, (embedding, context, self.clock(), k))
        )
        return [VectorMatch(_entry(row[:8]), 1.0 - float(row[8])) for row in rows]

    async def get(self, entry_id: str) -> SemanticEntry | None:
        rows = await self._guarded("get", self._fetch(self._sql.get, (entry_id, self.clock())))
        return _entry(rows[0]) if rows else None

    async def delete(self, entry_id: str) -> bool:
        removing = self._delete(sql.SQL("entry_id = %s"), [entry_id])
        return await self._guarded("delete", removing) > 0

    async def invalidate(self, *, tenant: str | None = None, task_type: str | None = None) -> int:
        conditions: list[sql.Composable] = [sql.SQL("TRUE")]
        params: list[object] = []
        if tenant is not None:
            conditions.append(sql.SQL("tenant = %s"))
            params.append(tenant)
        if task_type is not None:
            conditions.append(sql.SQL("task_type = %s"))
            params.append(task_type)
        removing = self._delete(sql.SQL(" AND ").join(conditions), params)
        return await self._guarded("invalidate", removing, whole_table=True)

    async def stats(self) -> IndexStats:
        counting = self._fetch(self._sql.stats, (self.clock(),))
        rows = await self._guarded("stats", counting, whole_table=True)
        entries, contexts = rows[0] if rows else (0, 0)
        return IndexStats(entries=int(entries), contexts=int(contexts))

    async def ping(self) -> None:
        await self._guarded("ping", self._fetch(sql.SQL("SELECT 1"), ()))

    async def aclose(self) -> None:
        await self.breaker.aclose()
        async with self._open_lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _vector(self, vector: NDArray[numpy.float32]) -> NDArray[numpy.float32]:
        array = numpy.asarray(vector, dtype=numpy.float32)
        if array.shape != (self.dim,):
            raise ValueError(f"expected a vector of shape ({self.dim},), got {array.shape}")
        return array

    async def _delete(self, condition: sql.Composable, params: list[object]) -> int:
        """Delete the rows matching ``condition``; the number of them that were live."""
        statement = sql.SQL(
            "WITH gone AS (DELETE FROM {table} WHERE {condition} RETURNING expires_at)"
            " SELECT COUNT(*) FILTER (WHERE expires_at IS NULL OR expires_at > %s) FROM gone"
        ).format(table=sql.Identifier(self.table), condition=condition)
        async with self._connection() as connection:
            cursor = await connection.execute(statement, [*params, self.clock()])
            row = await cursor.fetchone()
        return 0 if row is None else int(row[0])

    async def _fetch(
        self, statement: sql.SQL | sql.Composed, params: tuple[Any, ...]
    ) -> list[tuple[Any, ...]]:
        async with self._connection() as connection:
            cursor = await connection.execute(statement, params)
            rows: list[tuple[Any, ...]] = await cursor.fetchall()
        return rows

    # -- connections -----------------------------------------------------------------------
    async def _guarded(
        self, what: str, operation: Coroutine[Any, Any, T], *, whole_table: bool = False
    ) -> T:
        """``operation`` under the breaker: its deadline, or ``connect_timeout_s`` while the
        pool is not open yet and for statements over the whole table."""
        slow = whole_table or self._pool is None
        deadline = max(self.breaker.deadline_s, self.connect_timeout_s) if slow else None
        return await self.breaker.call(what, operation, deadline_s=deadline)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        pool = await self._ensure_pool()
        try:
            async with pool.connection() as connection:
                yield connection
        except psycopg.Error as exc:
            raise CacheBackendError(self._failure(exc)) from exc

    async def _ensure_pool(self) -> AsyncConnectionPool:
        if self._pool is not None:
            return self._pool
        async with self._open_lock:
            if self._closed:
                raise CacheBackendError(f"pgvector semantic index {self.location} is closed")
            if self._pool is not None:
                return self._pool
            try:
                await self._create_schema()
                pool = AsyncConnectionPool(
                    self._url,
                    kwargs=self._connect_kwargs(),
                    configure=register_vector_async,
                    min_size=1,
                    max_size=self.max_connections,
                    open=False,
                    timeout=self.connect_timeout_s,
                    name="helios-semantic-cache",
                )
                try:
                    await pool.open(wait=True, timeout=self.connect_timeout_s)
                except BaseException:
                    await pool.close()
                    raise
            except psycopg.Error as exc:
                raise CacheBackendError(self._unreachable(exc)) from exc
            self._pool = pool
            return pool

    def _connect_kwargs(self) -> dict[str, Any]:
        return connect_kwargs(
            application_name="helios-semantic-cache",
            options=f"-c hnsw.ef_search={self.ef_search}",
            connect_timeout_s=self.connect_timeout_s,
        )

    async def _create_schema(self) -> None:
        try:
            connection = await psycopg.AsyncConnection.connect(self._url, **self._connect_kwargs())
        except psycopg.Error as exc:
            raise CacheBackendError(self._unreachable(exc)) from exc
        try:
            async with connection, connection.transaction():
                await connection.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    (_LOCK_CLASS, f"semantic:{self.table}"),
                )
                await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
                for statement in self._sql.schema(self.dim):
                    await connection.execute(statement)
                cursor = await connection.execute(
                    "SELECT atttypmod FROM pg_attribute"
                    " WHERE attrelid = %s::regclass AND attname = 'embedding'",
                    (sql.Identifier(self.table).as_string(connection),),
                )
                row = await cursor.fetchone()
        except psycopg.Error as exc:
            raise CacheBackendError(
                f"pgvector semantic index {self.location}: cannot create table"
                f" {self.table}: {one_line(exc)}"
            ) from exc
        if row is not None and row[0] != self.dim:
            raise CacheBackendError(
                f"pgvector semantic index {self.location}: table {self.table} holds"
                f" {row[0]}-dimensional vectors, not {self.dim}; use another table"
            )

    def _failure(self, exc: BaseException) -> str:
        return f"pgvector semantic index {self.location}: {one_line(exc)}"

    def _unreachable(self, exc: BaseException) -> str:
        return f"cannot connect to the pgvector semantic index at {self.location}: {one_line(exc)}"


class _Statements:
    """The SQL of one table, composed once with its name quoted as an identifier."""

    def __init__(self, table: str) -> None:
        self.table = table
        t = sql.Identifier(table)
        self.upsert = sql.SQL(
            "INSERT INTO {t} (" + _COLUMNS + ", embedding)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %b)"
            " ON CONFLICT (entry_id) DO UPDATE SET context = excluded.context,"
            " tenant = excluded.tenant, task_type = excluded.task_type,"
            " question = excluded.question, reply = excluded.reply,"
            " created_at = excluded.created_at, expires_at = excluded.expires_at,"
            " embedding = excluded.embedding"
        ).format(t=t)
        self.purge = sql.SQL("DELETE FROM {t} WHERE expires_at <= %s").format(t=t)
        self.search = sql.SQL(
            "SELECT " + _COLUMNS + ", embedding <=> %b AS distance FROM {t}"
            " WHERE context = %s AND " + _LIVE + " ORDER BY distance LIMIT %s"
        ).format(t=t)
        self.get = sql.SQL(
            "SELECT " + _COLUMNS + " FROM {t} WHERE entry_id = %s AND " + _LIVE
        ).format(t=t)
        self.stats = sql.SQL(
            "SELECT COUNT(*), COUNT(DISTINCT context) FROM {t} WHERE " + _LIVE
        ).format(t=t)

    def schema(self, dim: int) -> list[sql.Composed]:
        t = sql.Identifier(self.table)
        statements = [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {t} (entry_id TEXT PRIMARY KEY,"
                " context TEXT NOT NULL, tenant TEXT NOT NULL, task_type TEXT NOT NULL,"
                " question TEXT NOT NULL, reply BYTEA NOT NULL,"
                " created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION,"
                " embedding vector({dim}) NOT NULL)"
            ).format(t=t, dim=sql.Literal(dim))
        ]
        for suffix, definition in [
            ("context", "(context)"),
            ("tenant", "(tenant, task_type)"),
            ("task_type", "(task_type)"),
            ("expires_at", "(expires_at)"),
            ("embedding", "USING hnsw (embedding vector_cosine_ops)"),
        ]:
            statements.append(
                sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {t} " + definition).format(
                    name=sql.Identifier(_index_name(self.table, suffix)), t=t
                )
            )
        return statements


def _index_name(table: str, suffix: str) -> str:
    """``<table>_<suffix>``, shortened with a hash of the table name where that would pass
    PostgreSQL's 63 bytes (which would silently truncate it, and two tables could clash)."""
    name = f"{table}_{suffix}"
    if len(name) <= 63:
        return name
    digest = sha256(table.encode()).hexdigest()[:8]
    return f"{table[: 63 - len(suffix) - 10]}_{digest}_{suffix}"


def _out_of_reach(exc: BaseException) -> bool:
    """The client's own failure (connection refused or lost, pool timeout), not a
    statement's: what counts against the breaker."""
    cause = exc.__cause__ if isinstance(exc, CacheBackendError) else exc
    return isinstance(cause, psycopg.OperationalError) and cause.sqlstate is None


def _entry(row: tuple[Any, ...]) -> SemanticEntry:
    return SemanticEntry(*row)  # the columns of _COLUMNS, in the dataclass's field order
