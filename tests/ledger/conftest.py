"""Ledger fixtures: one factory per store kind, so a contract test runs against each.

``ledger`` is parametrized over memory, SQLite (a file in ``tmp_path``) and PostgreSQL (a
fresh schema of ``HELIOS_TEST_POSTGRES_URL``'s database, dropped afterwards);
``durable_ledger`` over the two that persist. ``ledger.open()`` returns a new store
instance on the same ledger (for memory, the one instance), so tests can reopen a ledger
or share it between instances; every store opened is closed after the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helios.ledger.codec import encode_event
from helios.ledger.events import (
    AsyncFallback,
    Event,
    PersonaLLMRun,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.memory import MemoryLedgerStore
from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.store import LedgerStore

POSTGRES_URL_VARIABLE = "HELIOS_TEST_POSTGRES_URL"


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not url:
        pytest.skip(
            f"set {POSTGRES_URL_VARIABLE} (e.g. postgresql://postgres@127.0.0.1:5432/test)"
            " to run the PostgreSQL ledger tests"
        )
    return url


@dataclass
class Ledger:
    """One ledger of one kind; ``open()`` gives another store instance on it."""

    kind: str
    path: Path | None = None
    url: str | None = None
    schema: str | None = None
    opened: list[LedgerStore] = field(default_factory=list)
    _memory: MemoryLedgerStore | None = None

    def open(self) -> LedgerStore:
        store: LedgerStore
        if self.kind == "memory":
            if self._memory is None:
                self._memory = MemoryLedgerStore()
            return self._memory
        if self.kind == "sqlite":
            assert self.path is not None
            store = SQLiteLedgerStore(self.path)
        else:
            from helios.ledger.postgres import PostgresLedgerStore

            assert self.url is not None and self.schema is not None
            store = PostgresLedgerStore(self.url, schema=self.schema)
        self.opened.append(store)
        return store

    @property
    def location(self) -> str:
        """What a worker process needs to open this ledger: the path, or the schema."""
        return str(self.path) if self.kind == "sqlite" else str(self.schema)

    async def insert_raw(self, event: Event) -> None:
        """Store ``event`` as an older Helios, or a hand-written statement, could have:
        past the stores' checks (the store must exist: open it and use it first)."""
        if self.kind == "memory":
            assert self._memory is not None
            self._memory._events.append(event)
            return
        row = (event.task_id, event.type, event.timestamp, event.version, encode_event(event))
        if self.kind == "sqlite":
            import sqlite3

            assert self.path is not None
            with sqlite3.connect(self.path) as connection:
                connection.execute(
                    "INSERT INTO events (task_id, type, timestamp, version, body)"
                    " VALUES (?, ?, ?, ?, ?)",
                    row,
                )
            connection.close()
            return
        import psycopg

        assert self.url is not None
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as connection:
            await connection.execute(
                f"INSERT INTO {self.schema}.events (task_id, type, timestamp, version, body)"
                " VALUES (%s, %s, %s, %s, %s)",
                row,
            )

    async def close_all(self) -> None:
        for store in self.opened:
            await store.aclose()
        if self._memory is not None:
            await self._memory.aclose()


async def make_ledger(kind: str, tmp_path: Path) -> AsyncIterator[Ledger]:
    if kind == "memory":
        ledger = Ledger(kind)
    elif kind == "sqlite":
        ledger = Ledger(kind, path=tmp_path / "ledger" / "events.sqlite3")
    else:
        url = postgres_url()
        ledger = Ledger(kind, url=url, schema=f"helios_test_{uuid.uuid4().hex[:12]}")
    try:
        yield ledger
    finally:
        await ledger.close_all()
        if ledger.schema is not None and ledger.url is not None:
            await drop_schema(ledger.url, ledger.schema)


async def drop_schema(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    async for made in make_ledger(request.param, tmp_path):
        yield made


@pytest.fixture(params=["sqlite", "postgres"])
async def durable_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    async for made in make_ledger(request.param, tmp_path):
        yield made


EPOCH = 1_700_000_000.0
"""Where test time starts (November 2023): stores refuse timestamps before 2000."""


def task_events(task_id: str, *, start: float = 1_000.0, calls: int = 3) -> list[Event]:
    """A plausible task: started, ``calls`` persona runs, a fallback, finished; ``start``
    counts seconds from :data:`EPOCH`."""
    start += EPOCH
    events: list[Event] = [
        TaskStarted(
            task_id=task_id,
            goal=f"goal of {task_id}",
            timestamp=start,
            flags={"async_thesis": True, "max_passes": 2},
        ),
    ]
    for index in range(calls):
        events.append(
            PersonaLLMRun(
                task_id=task_id,
                timestamp=start + 1 + index,
                persona=f"persona-{index}",
                stage="thesis",
                provider="anthropic",
                model="claude-sonnet-4-5",
                streaming=True,
                ttft_s=0.5,
                duration_s=2.0,
                perceived_improvement=0.75,
                input_tokens=1200,
                output_tokens=350,
                cost_usd=0.0123,
            )
        )
    events.append(AsyncFallback(task_id=task_id, timestamp=start + 10, reason="timeout"))
    events.append(
        TaskFinished(task_id=task_id, timestamp=start + 11, success=True, duration_s=11.0)
    )
    return events
