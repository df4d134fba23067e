"""The embedded ledger: one SQLite file, shared by every process that opens it.

The stdlib driver blocks, so every statement runs in a worker thread on one connection
guarded by a lock; events are encoded and decoded in that thread too, so a large batch or
query never holds up the event loop. WAL lets readers in other processes carry on while
one writes, and each write is one ``BEGIN IMMEDIATE`` transaction (a whole batch, or an
override with its ``flag_changed`` event), so other readers see all of it or none.

Durability: ``synchronous=FULL`` by default. In WAL mode ``NORMAL`` already survives a
killed process (the commit sits in the OS page cache; ``tests/ledger/test_kill.py``);
``FULL`` adds an fsync of the WAL per commit, so that a power cut or an OS crash cannot
lose an event whose ``flush()`` returned either. Measured through the ``LedgerWriter`` on
a 2-vCPU VM with ``persona_llm_run`` events in batches of 500, both sustain 33-40k
events/s (the target is 20k); with a ``flush()`` after every 7-event task, FULL does 4.1k
tasks/s (flush p50 1.5 ms) against NORMAL's 6.4k (1.0 ms). The stronger promise costs
little, so it is the default; pass ``synchronous="NORMAL"`` where fsync is slow and the
last commits before a power cut may be lost.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from helios.errors import LedgerError
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
from helios.ledger.migrations import MIGRATIONS_TABLE_SQLITE, pending
from helios.ledger.store import ANY_EVENT, EventQuery, LedgerStore
from helios.ledger.task_list import TaskListQuery, TaskPage, task_list_sql
from helios.ledger.validation import check_events
from helios.ledger.window import WindowFacts, facts_from_rows, window_sql
from helios.sqlite_db import SQLiteDatabase, Synchronous, transaction

_WINDOW_SQL = window_sql("sqlite")
_TUNING = (
    # Checkpoint every 32 MiB of WAL rather than 4 MiB: the task-id index takes random
    # keys, so each batch dirties many pages, and fewer checkpoints copy each page back
    # fewer times (about a third more events per second). After a checkpoint the WAL file
    # is cut back to 64 MiB.
    "PRAGMA wal_autocheckpoint=8192",
    "PRAGMA journal_size_limit=67108864",
)
_INSERT = "INSERT INTO events (task_id, type, timestamp, version, body) VALUES (?, ?, ?, ?, ?)"


class SQLiteLedgerStore(LedgerStore):
    """Events in ``events``, overrides in ``flag_overrides``; see :mod:`.migrations`."""

    name = "sqlite"

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout_s: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._db = SQLiteDatabase(
            self.path,
            what="SQLite ledger",
            error=LedgerError,
            setup=_migrate,
            synchronous=synchronous,
            pragmas=_TUNING,
            busy_timeout_s=busy_timeout_s,
        )

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout_s: float = 10.0,
    ) -> SQLiteLedgerStore:
        """A store with its file opened and migrated now, so that a bad path fails at
        start-up; the constructor alone opens the file on first use."""
        store = cls(path, synchronous=synchronous, busy_timeout_s=busy_timeout_s)
        await store._db.run(lambda _connection: None)
        return store

    async def append(self, events: Sequence[Event]) -> None:
        batch = list(events)
        if batch:
            await self._db.run(lambda connection: _append(connection, batch))

    async def query(self, query: EventQuery = ANY_EVENT) -> list[Event]:
        where, params = event_filter(query, "sqlite")

        def select(connection: sqlite3.Connection) -> list[Event]:
            rows = connection.execute(f"SELECT id, body FROM events{where} ORDER BY id", params)
            return [decode_event(row_id, body) for row_id, body in rows]

        return await self._db.run(select)

    async def last_sequence(self) -> int:
        (last,) = await self._db.run(
            lambda connection: connection.execute(
                "SELECT COALESCE(MAX(id), 0) FROM events"
            ).fetchone()
        )
        return int(last)

    async def events_after(self, sequence: int, *, limit: int = 1000) -> list[tuple[int, Event]]:
        def select(connection: sqlite3.Connection) -> list[tuple[int, Event]]:
            rows = connection.execute(
                "SELECT id, body FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (sequence, max(limit, 0)),
            ).fetchall()
            return decode_sequenced(rows)

        return await self._db.run(select)

    async def count(self) -> int:
        (total,) = await self._db.run(
            lambda connection: connection.execute("SELECT COUNT(*) FROM events").fetchone()
        )
        return int(total)

    async def list_tasks(self, query: TaskListQuery) -> TaskPage:
        select, count, params = task_list_sql(query, "sqlite")

        def page(connection: sqlite3.Connection) -> TaskPage:
            rows = connection.execute(
                select, [*params, max(query.limit, 0), max(query.offset, 0)]
            ).fetchall()
            (total,) = connection.execute(count, params).fetchone()
            return TaskPage([task_row(started, finished) for started, finished in rows], total)

        return await self._db.run(page)

    async def window_facts(self, since: float, until: float) -> WindowFacts:
        def read(connection: sqlite3.Connection) -> WindowFacts:
            rows = {
                name: connection.execute(statement, (since, until)).fetchall()
                for name, statement in _WINDOW_SQL.items()
            }
            return facts_from_rows(**rows)

        return await self._db.run(read)

    async def set_flag_override(
        self, flag: str, value: FlagValue | None, *, actor: str, reason: str
    ) -> FlagChanged:
        def set_override(connection: sqlite3.Connection) -> FlagChanged:
            with transaction(connection):
                row = connection.execute(
                    "SELECT value FROM flag_overrides WHERE flag = ?", (flag,)
                ).fetchone()
                old = None if row is None else decode_flag_value(row[0])
                event = FlagChanged(flag=flag, old=old, new=value, reason=reason, actor=actor)
                if value is None:
                    connection.execute("DELETE FROM flag_overrides WHERE flag = ?", (flag,))
                else:
                    connection.execute(
                        "INSERT INTO flag_overrides (flag, value, actor, reason, updated_at)"
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (flag) DO UPDATE SET"
                        " value = excluded.value, actor = excluded.actor,"
                        " reason = excluded.reason, updated_at = excluded.updated_at",
                        (flag, encode_flag_value(value), actor, reason, event.timestamp),
                    )
                _insert(connection, [event])
            return event

        return await self._db.run(set_override)

    async def flag_overrides(self) -> dict[str, FlagValue]:
        rows = await self._db.run(
            lambda connection: connection.execute(
                "SELECT flag, value FROM flag_overrides ORDER BY flag"
            ).fetchall()
        )
        return {flag: decode_flag_value(value) for flag, value in rows}

    async def migrations(self) -> list[str]:
        rows = await self._db.run(
            lambda connection: connection.execute(
                "SELECT name FROM schema_migrations ORDER BY name"
            ).fetchall()
        )
        return [name for (name,) in rows]

    async def aclose(self) -> None:
        await self._db.close()


def _append(connection: sqlite3.Connection, events: list[Event]) -> None:
    check_events(events)
    with transaction(connection):
        _insert(connection, events)


def _insert(connection: sqlite3.Connection, events: list[Event]) -> None:
    # a generator, so each event is encoded as its row goes in: one that cannot be encoded
    # fails the statement midway and the transaction rolls the earlier rows back
    connection.executemany(
        _INSERT,
        (
            (event.task_id, event.type, event.timestamp, event.version, encode_event(event))
            for event in events
        ),
    )


def _migrate(connection: sqlite3.Connection) -> None:
    """Apply the missing migrations; BEGIN IMMEDIATE takes the write lock first, so a second
    process opening the file waits, then finds them applied."""
    with transaction(connection):
        connection.execute(MIGRATIONS_TABLE_SQLITE)
        applied = {name for (name,) in connection.execute("SELECT name FROM schema_migrations")}
        for migration in pending(applied):
            for statement in migration.sqlite:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                (migration.name, time.time()),
            )
