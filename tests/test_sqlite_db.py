"""The shared SQLite connection: concurrent openers of a new file must not fail."""

import asyncio
import sqlite3
from pathlib import Path

from helios.errors import LedgerError
from helios.sqlite_db import SQLiteDatabase, transaction


def create(connection: sqlite3.Connection) -> None:
    with transaction(connection):
        connection.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")


def insert(connection: sqlite3.Connection) -> None:
    with transaction(connection):
        connection.execute("INSERT INTO t VALUES (1)")


async def test_many_openers_of_a_new_file_all_succeed(tmp_path: Path) -> None:
    # Switching a new file to WAL can fail at once with "database is locked" while another
    # connection opens it; SQLiteDatabase waits that out (this failed ~1 round in 20).
    for round_number in range(60):
        path = tmp_path / f"race-{round_number}.sqlite3"
        databases = [
            SQLiteDatabase(path, what="test db", error=LedgerError, setup=create) for _ in range(6)
        ]
        try:
            await asyncio.gather(*(db.run(insert) for db in databases))
            (count,) = await databases[0].run(
                lambda c: c.execute("SELECT COUNT(*) FROM t").fetchone()
            )
            assert count == 6
        finally:
            for db in databases:
                await db.close()
