"""A worker process for the multi-process contract test (not a test module).

``python -m tests.ledger.append_worker KIND LOCATION WORKER BATCHES SIZE`` opens the
ledger (SQLite: LOCATION is the file; PostgreSQL: LOCATION is the schema of the database
at ``HELIOS_TEST_POSTGRES_URL``) and appends BATCHES batches of SIZE ``task_started``
events, each batch one task ``WORKER-bN`` whose events carry goals ``"0"`` .. ``SIZE-1``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from helios.ledger.events import Event, TaskStarted
from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.store import LedgerStore


def open_store(kind: str, location: str) -> LedgerStore:
    if kind == "sqlite":
        return SQLiteLedgerStore(location)
    from helios.ledger.postgres import PostgresLedgerStore

    return PostgresLedgerStore(os.environ["HELIOS_TEST_POSTGRES_URL"], schema=location)


async def main(kind: str, location: str, worker: str, batches: int, size: int) -> None:
    store = open_store(kind, location)
    try:
        for number in range(batches):
            task_id = f"{worker}-b{number}"
            batch: list[Event] = [
                TaskStarted(task_id=task_id, goal=str(index)) for index in range(size)
            ]
            await store.append(batch)
    finally:
        await store.aclose()


if __name__ == "__main__":
    kind, location, worker, batches, size = sys.argv[1:6]
    asyncio.run(main(kind, location, worker, int(batches), int(size)))
