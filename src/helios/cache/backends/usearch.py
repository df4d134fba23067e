"""The embedded L3 index: entries in SQLite, vectors searched in memory, per context.

Rows live in the table ``semantic_entries`` of a SQLite file (by default the L2 cache's,
opened through its own :class:`~helios.sqlite_db.SQLiteDatabase`), each with its vector as
a float32 blob. Searching happens in memory, one structure per context, because a context
must only ever see its own entries (:mod:`~helios.cache.backends.usearch_graphs` holds
them, and says why): a context below ``hnsw_min_entries`` (1024) is an exact numpy scan, a
bigger one a usearch HNSW graph (f16 by default).

Either way the candidates are rescored from their float32 rows, so scores are exact
cosines whatever the graph's precision, and the candidates' rows are read with one query.

Keys are the rows' ``INTEGER PRIMARY KEY AUTOINCREMENT`` ids, never reused: replacing an
entry deletes its row and inserts a new one, so a stale key can only ever miss (its row is
gone), never point at another entry.

Graphs are saved on :meth:`UsearchIndex.aclose` and, after a change, every
``persist_interval_s``, and taken back at load only when they match the rows
(:mod:`~helios.cache.backends.usearch_files` holds the files, the manifest and the checks).

Several processes may share the file. Before every operation an index reads the rows
added since the highest id it has seen (one primary-key range query), so other processes'
additions and replacements are searchable at once. Their deletions and invalidations
remove rows that this process's graphs still hold: such a key is dropped when a search
finds its row gone, and the search widens until it has ``k`` live entries or has looked at
the whole context. What is not shared is the graphs themselves: each process builds its
own, and one process's save may replace another's files (the checks at load catch that).
Expired rows are never returned; they are deleted when a search meets them, on every
``add`` and at load.

Everything, searches included, runs in a worker thread under the database's lock, one
operation at a time per index, so the rows and the graphs always change together.

Vectors of another dimension may share the file (another embedder): rows carry their
``dim`` and an index only ever sees its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helios.cache.backends.base import Clock
from helios.cache.backends.usearch_files import GraphFiles
from helios.cache.backends.usearch_graphs import (
    ContextVectors,
    ExactVectors,
    GraphDType,
    GraphVectors,
    Keys,
    Vector,
    new_graph,
)
from helios.cache.backends.vector import IndexStats, SemanticEntry, VectorIndex, VectorMatch
from helios.errors import CacheBackendError, MissingDependency
from helios.sqlite_db import SQLiteDatabase, transaction

# usearch's extension carries its own copy of libstdc++; when onnxruntime (the local
# embedder) is loaded after it, onnxruntime's start-up crashes the process (a segfault in
# libstdc++, usearch 2.26 + onnxruntime 1.31). Loaded the other way round both work, so
# onnxruntime, when installed, is always loaded first.
with contextlib.suppress(ImportError):
    import onnxruntime  # type: ignore[import-untyped]  # noqa: F401

try:
    import numpy
    from numpy.typing import NDArray
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependency("usearch", "semantic", "The usearch semantic index") from exc

if TYPE_CHECKING:
    from usearch.index import Index

__all__ = ["GraphDType", "LoadReport", "UsearchIndex"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS semantic_entries ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, entry_id TEXT NOT NULL, dim INTEGER NOT NULL,"
    " context TEXT NOT NULL, tenant TEXT NOT NULL, task_type TEXT NOT NULL,"
    " question TEXT NOT NULL, reply BLOB NOT NULL, created_at REAL NOT NULL, expires_at REAL,"
    " vector BLOB NOT NULL, UNIQUE (entry_id, dim))",
    "CREATE INDEX IF NOT EXISTS semantic_entries_context ON semantic_entries (dim, context, id)",
    "CREATE INDEX IF NOT EXISTS semantic_entries_tenant ON semantic_entries (tenant, task_type)",
    "CREATE INDEX IF NOT EXISTS semantic_entries_task_type ON semantic_entries (task_type)",
    "CREATE INDEX IF NOT EXISTS semantic_entries_expires_at ON semantic_entries (expires_at)",
)
_ENTRY = "entry_id, context, tenant, task_type, question, reply, created_at, expires_at"
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_TOMBSTONE_SLACK = 1024  # removed graph nodes tolerated beyond the live ones
_MAX_PARAMETERS = 10_000  # below SQLite's 32,766 bound parameters per statement


@dataclass
class LoadReport:
    """How the in-memory indexes were built when the file was first used."""

    from_files: int = 0
    """Graphs read from their saved files."""
    rebuilt: int = 0
    """Graphs built from the rows (file missing, corrupt or stale)."""
    exact: int = 0
    """Contexts small enough for the exact scan (never saved)."""


@dataclass
class _Memory:
    contexts: dict[str, ContextVectors] = field(default_factory=dict)
    last_seen_id: int = 0
    last_persist: float = field(default_factory=time.monotonic)


class UsearchIndex(VectorIndex):
    """L3 entries in the SQLite file at ``path``; HNSW graphs per big context, in memory."""

    name = "usearch"
    in_process = True

    def __init__(
        self,
        path: Path | str,
        dim: int,
        *,
        clock: Clock = time.time,
        hnsw_min_entries: int = 1024,
        dtype: GraphDType = "f16",
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
        persist_interval_s: float = 300.0,
        busy_timeout_s: float = 5.0,
    ) -> None:
        """``hnsw_min_entries``: the size from which a context gets a graph instead of an
        exact scan; ``connectivity``/``expansion_*``: HNSW's M, efConstruction, efSearch."""
        if dim < 1:
            raise ValueError("dim must be positive")
        if hnsw_min_entries < 1:
            raise ValueError("hnsw_min_entries must be positive")
        super().__init__(clock=clock)
        self.path = Path(path)
        self.dim = dim
        self.hnsw_min_entries = hnsw_min_entries
        self.dtype = dtype
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self.expansion_search = expansion_search
        self.persist_interval_s = persist_interval_s
        self.index_dir = self.path.with_name(self.path.name + ".usearch") / f"dim{dim}"
        """Where the graphs are saved."""
        self._files = GraphFiles(
            self.index_dir,
            dim=dim,
            dtype=dtype,
            connectivity=connectivity,
            new_graph=self._new_graph,
        )
        self.load_report: LoadReport | None = None
        """Set when the index is first used (``None`` before)."""
        self._memory: _Memory | None = None
        self._db = SQLiteDatabase(
            self.path,
            what="SQLite semantic cache",
            error=CacheBackendError,
            setup=_create_schema,
            busy_timeout_s=busy_timeout_s,
            driver_errors=(sqlite3.Error, OSError, UnicodeError),
        )

    @classmethod
    async def open(
        cls,
        path: Path | str,
        dim: int,
        *,
        clock: Clock = time.time,
        hnsw_min_entries: int = 1024,
        dtype: GraphDType = "f16",
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
        persist_interval_s: float = 300.0,
        busy_timeout_s: float = 5.0,
    ) -> UsearchIndex:
        """An index with its file opened and its graphs loaded now (a bad path fails here,
        and the first search does not pay for the load); raises :class:`CacheBackendError`."""
        index = cls(
            path,
            dim,
            clock=clock,
            hnsw_min_entries=hnsw_min_entries,
            dtype=dtype,
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
            persist_interval_s=persist_interval_s,
            busy_timeout_s=busy_timeout_s,
        )
        await index._db.run(index._loaded)
        return index

    async def add(self, entry: SemanticEntry, vector: NDArray[numpy.float32]) -> None:
        row = self._vector(vector)
        await self._db.run(lambda connection: self._add(connection, entry, row))

    async def search(
        self, context: str, vector: NDArray[numpy.float32], *, k: int
    ) -> list[VectorMatch]:
        return await asyncio.to_thread(self.search_now, context, vector, k=k)

    def search_now(
        self, context: str, vector: NDArray[numpy.float32], *, k: int
    ) -> list[VectorMatch]:
        query = self._vector(vector)
        if k < 1:
            raise ValueError("k must be positive")
        return self._db.run_now(lambda connection: self._search(connection, context, query, k))

    async def get(self, entry_id: str) -> SemanticEntry | None:
        def get(connection: sqlite3.Connection) -> SemanticEntry | None:
            row = connection.execute(
                f"SELECT {_ENTRY} FROM semantic_entries WHERE entry_id = ? AND dim = ? AND {_LIVE}",
                (entry_id, self.dim, self.clock()),
            ).fetchone()
            return None if row is None else _entry(row)

        return await self._db.run(get)

    async def delete(self, entry_id: str) -> bool:
        removed = await self._delete_where("entry_id = ?", (entry_id,))
        return removed > 0

    async def invalidate(self, *, tenant: str | None = None, task_type: str | None = None) -> int:
        conditions, params = ["1 = 1"], []
        if tenant is not None:
            conditions.append("tenant = ?")
            params.append(tenant)
        if task_type is not None:
            conditions.append("task_type = ?")
            params.append(task_type)
        return await self._delete_where(" AND ".join(conditions), tuple(params))

    async def stats(self) -> IndexStats:
        entries, contexts = await self._db.run(
            lambda connection: connection.execute(
                "SELECT COUNT(*), COUNT(DISTINCT context) FROM semantic_entries"
                f" WHERE dim = ? AND {_LIVE}",
                (self.dim, self.clock()),
            ).fetchone()
        )
        return IndexStats(entries=int(entries), contexts=int(contexts))

    async def ping(self) -> None:
        await self._db.run(lambda connection: connection.execute("SELECT 1").fetchone())

    async def aclose(self) -> None:
        try:
            if self._memory is not None:
                await self._db.run(lambda _connection: self._persist())
        finally:
            await self._db.close()

    def _vector(self, vector: NDArray[numpy.float32]) -> Vector:
        array = numpy.asarray(vector, dtype=numpy.float32)
        if array.shape != (self.dim,):
            raise ValueError(f"expected a vector of shape ({self.dim},), got {array.shape}")
        return array

    # -- in the worker thread, under the database's lock ----------------------------------
    def _add(self, connection: sqlite3.Connection, entry: SemanticEntry, vector: Vector) -> None:
        memory = self._loaded(connection)
        now = self.clock()
        with transaction(connection):
            self._catch_up(connection, memory)  # under the write lock: no id is skipped
            replaced = connection.execute(
                "DELETE FROM semantic_entries WHERE entry_id = ? AND dim = ?"
                " RETURNING id, context, expires_at",
                (entry.entry_id, self.dim),
            ).fetchall()
            expired = connection.execute(
                "DELETE FROM semantic_entries WHERE expires_at <= ?"
                " RETURNING id, context, expires_at",
                (now,),
            ).fetchall()
            cursor = connection.execute(
                f"INSERT INTO semantic_entries ({_ENTRY}, dim, vector)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.entry_id,
                    entry.context,
                    entry.tenant,
                    entry.task_type,
                    entry.question,
                    bytes(entry.reply),
                    entry.created_at,
                    entry.expires_at,
                    self.dim,
                    vector.astype("<f4").tobytes(),
                ),
            )
            key = int(cursor.lastrowid or 0)
        # memory follows the committed rows (a failure before here leaves it untouched)
        self._forget(memory, replaced + expired)
        memory.last_seen_id = key
        self._remember(
            memory, entry.context, numpy.array([key], dtype=numpy.int64), vector[numpy.newaxis, :]
        )
        if time.monotonic() - memory.last_persist >= self.persist_interval_s:
            self._persist()

    def _search(
        self, connection: sqlite3.Connection, context: str, query: Vector, k: int
    ) -> list[VectorMatch]:
        memory = self._loaded(connection)
        self._catch_up(connection, memory)
        vectors = memory.contexts.get(context)
        count = k
        while vectors is not None and len(vectors):
            size = len(vectors)
            keys = vectors.search(query, min(count, size))
            now = self.clock()
            rows = _rows_by_id(connection, keys)
            matches, dead, expired = [], [], []
            for key in keys:
                row = rows.get(key)
                if row is None or row[1] != context:
                    dead.append(key)
                elif row[7] is not None and row[7] <= now:
                    expired.append(key)
                else:
                    stored = numpy.frombuffer(row[8], dtype="<f4")
                    matches.append(VectorMatch(_entry(row[:8]), float(stored @ query)))
            if expired:
                with transaction(connection):
                    connection.executemany(
                        "DELETE FROM semantic_entries WHERE id = ? AND expires_at <= ?",
                        [(key, now) for key in expired],
                    )
            if dead or expired:
                self._forget(memory, [(key, context, None) for key in dead + expired])
            if len(matches) >= k or not (dead or expired) or len(keys) >= size:
                matches.sort(key=lambda match: match.score, reverse=True)
                return matches[:k]
            count *= 2  # some candidates were gone: look further
            vectors = memory.contexts.get(context)
        return []

    async def _delete_where(self, condition: str, params: tuple[object, ...]) -> int:
        def delete(connection: sqlite3.Connection) -> int:
            memory = self._loaded(connection)
            now = self.clock()
            with transaction(connection):
                gone = connection.execute(
                    f"DELETE FROM semantic_entries WHERE {condition} AND dim = ?"
                    " RETURNING id, context, expires_at",
                    (*params, self.dim),
                ).fetchall()
            self._forget(memory, gone)
            return sum(1 for _id, _context, expires_at in gone if _alive(expires_at, now))

        return await self._db.run(delete)

    def _loaded(self, connection: sqlite3.Connection) -> _Memory:
        if self._memory is None:
            self._memory = self._load(connection)
        return self._memory

    def _catch_up(self, connection: sqlite3.Connection, memory: _Memory) -> None:
        """Take in the rows other processes added since ``last_seen_id``."""
        rows = connection.execute(
            "SELECT id, dim, context, expires_at, vector FROM semantic_entries WHERE id > ?"
            " ORDER BY id",
            (memory.last_seen_id,),
        ).fetchall()
        if not rows:
            return
        now = self.clock()
        by_context: dict[str, list[tuple[int, bytes]]] = {}
        for key, dim, context, expires_at, blob in rows:
            if dim == self.dim and _alive(expires_at, now):
                by_context.setdefault(context, []).append((key, blob))
        for context, found in by_context.items():
            keys = numpy.array([key for key, _blob in found], dtype=numpy.int64)
            self._remember(memory, context, keys, _matrix([blob for _key, blob in found], self.dim))
        memory.last_seen_id = rows[-1][0]

    def _remember(self, memory: _Memory, context: str, keys: Keys, vectors: Vector) -> None:
        current = memory.contexts.get(context)
        if current is None:
            current = memory.contexts[context] = ExactVectors(self.dim)
        if isinstance(current, ExactVectors) and len(current) + len(keys) >= self.hnsw_min_entries:
            graph = self._graph_vectors()
            if len(current):
                graph.add(current.keys, current.matrix)
            current = memory.contexts[context] = graph
        current.add(keys, vectors)

    def _forget(self, memory: _Memory, rows: Iterable[tuple[int, str, float | None]]) -> None:
        by_context: dict[str, list[int]] = {}
        for key, context, _expires_at in rows:
            by_context.setdefault(context, []).append(key)
        for context, keys in by_context.items():
            vectors = memory.contexts.get(context)
            if vectors is not None:
                vectors.remove(keys)
                if not len(vectors):
                    del memory.contexts[context]

    def _new_graph(self) -> Index:
        return new_graph(
            dim=self.dim,
            dtype=self.dtype,
            connectivity=self.connectivity,
            expansion_add=self.expansion_add,
            expansion_search=self.expansion_search,
        )

    def _graph_vectors(self, graph: Index | None = None) -> GraphVectors:
        """A big context's structure: ``graph`` as loaded from its file, or a new one."""
        return GraphVectors(self._new_graph, graph, tombstone_slack=_TOMBSTONE_SLACK)

    # -- loading and saving ---------------------------------------------------------------
    def _load(self, connection: sqlite3.Connection) -> _Memory:
        with transaction(connection):
            connection.execute(
                "DELETE FROM semantic_entries WHERE expires_at <= ?", (self.clock(),)
            )
        memory, report = _Memory(), LoadReport()
        connection.execute("BEGIN")  # one snapshot: rows added meanwhile come by _catch_up
        try:
            (memory.last_seen_id,) = connection.execute(
                "SELECT COALESCE(MAX(id), 0) FROM semantic_entries"
            ).fetchone()
            sizes = connection.execute(
                "SELECT context, COUNT(*), MAX(id) FROM semantic_entries WHERE dim = ?"
                " GROUP BY context",
                (self.dim,),
            ).fetchall()
            saved = self._files.read_manifest()
            for context, count, max_id in sizes:
                if count < self.hnsw_min_entries:
                    continue
                graph = self._files.saved_graph(
                    saved,
                    context,
                    count,
                    max_id,
                    partial(_context_ids, connection, self.dim, context),
                )
                if graph is not None:
                    memory.contexts[context] = self._graph_vectors(graph)
                    report.from_files += 1
                    continue
                keys, vectors = _context_rows(connection, self.dim, context)
                rebuilt = self._graph_vectors()
                rebuilt.add(keys, vectors)
                memory.contexts[context] = rebuilt
                report.rebuilt += 1
            small = connection.execute(
                "SELECT context, id, vector FROM semantic_entries WHERE dim = ? AND context IN"
                " (SELECT context FROM semantic_entries WHERE dim = ? GROUP BY context"
                "  HAVING COUNT(*) < ?) ORDER BY context, id",
                (self.dim, self.dim, self.hnsw_min_entries),
            ).fetchall()
        finally:
            connection.rollback()
        grouped: dict[str, list[tuple[int, bytes]]] = {}
        for context, key, blob in small:
            grouped.setdefault(context, []).append((key, blob))
        for context, found in grouped.items():
            exact = memory.contexts[context] = ExactVectors(self.dim)
            exact.add(
                numpy.array([key for key, _blob in found], dtype=numpy.int64),
                _matrix([blob for _key, blob in found], self.dim),
            )
            report.exact += 1
        self.load_report = report
        return memory

    def _persist(self) -> None:
        """Save the graphs that changed (see :meth:`GraphFiles.save`)."""
        memory = self._memory
        if memory is None:
            return
        memory.last_persist = time.monotonic()
        self._files.save(
            {
                context: vectors
                for context, vectors in memory.contexts.items()
                if isinstance(vectors, GraphVectors)
            }
        )


def _create_schema(connection: sqlite3.Connection) -> None:
    with transaction(connection):
        for statement in _SCHEMA:
            connection.execute(statement)


def _alive(expires_at: float | None, now: float) -> bool:
    return expires_at is None or expires_at > now


def _entry(row: tuple[Any, ...]) -> SemanticEntry:
    return SemanticEntry(*row)  # the columns of _ENTRY, in the dataclass's field order


def _rows_by_id(connection: sqlite3.Connection, keys: list[int]) -> dict[int, tuple[Any, ...]]:
    """The rows of ``keys``: one query, unless a widened search exceeds SQLite's limit on
    bound parameters."""
    found: dict[int, tuple[Any, ...]] = {}
    for start in range(0, len(keys), _MAX_PARAMETERS):
        chunk = keys[start : start + _MAX_PARAMETERS]
        rows = connection.execute(
            f"SELECT id, {_ENTRY}, vector FROM semantic_entries"
            f" WHERE id IN ({', '.join('?' * len(chunk))})",
            chunk,
        ).fetchall()
        found.update((row[0], row[1:]) for row in rows)
    return found


def _context_rows(connection: sqlite3.Connection, dim: int, context: str) -> tuple[Keys, Vector]:
    rows = connection.execute(
        "SELECT id, vector FROM semantic_entries WHERE dim = ? AND context = ? ORDER BY id",
        (dim, context),
    ).fetchall()
    keys = numpy.array([key for key, _blob in rows], dtype=numpy.int64)
    return keys, _matrix([blob for _key, blob in rows], dim)


def _context_ids(connection: sqlite3.Connection, dim: int, context: str) -> Keys:
    return numpy.array(
        connection.execute(
            "SELECT id FROM semantic_entries WHERE dim = ? AND context = ? ORDER BY id",
            (dim, context),
        ).fetchall(),
        dtype=numpy.int64,
    ).reshape(-1)


def _matrix(blobs: list[bytes], dim: int) -> Vector:
    return numpy.frombuffer(b"".join(blobs), dtype="<f4").reshape(-1, dim).astype(numpy.float32)
