"""API keys in a SQLite file (the default): one machine, any number of processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from helios.errors import KeyStoreError
from helios.keys.model import ApiKey
from helios.keys.store import COLUMNS, KeyStore, Row, StoredKey, decode
from helios.sqlite_db import SQLiteDatabase, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    tenant TEXT NOT NULL,
    name TEXT,
    admin INTEGER NOT NULL,
    budget TEXT,
    rpm INTEGER,
    models TEXT,
    expires_at REAL,
    created_at REAL NOT NULL,
    revoked_at REAL
)
"""


def _setup(connection: sqlite3.Connection) -> None:
    connection.execute(_SCHEMA)


class SQLiteKeyStore(KeyStore):
    name = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = SQLiteDatabase(
            self.path, what="SQLite key store", error=KeyStoreError, setup=_setup
        )

    async def _insert(self, row: Row) -> bool:
        def insert(connection: sqlite3.Connection) -> bool:
            try:
                with transaction(connection):
                    marks = ", ".join("?" * len(row))
                    connection.execute(f"INSERT INTO api_keys ({COLUMNS}) VALUES ({marks})", row)
            except sqlite3.IntegrityError:
                return False
            return True

        return await self._db.run(insert)

    async def lookup(self, key_id: str) -> StoredKey | None:
        def read(connection: sqlite3.Connection) -> Row | None:
            query = f"SELECT {COLUMNS} FROM api_keys WHERE id = ?"
            row: Row | None = connection.execute(query, (key_id,)).fetchone()
            return row

        row = await self._db.run(read)
        return None if row is None else decode(row)

    async def list_keys(self) -> list[ApiKey]:
        def read(connection: sqlite3.Connection) -> list[Row]:
            query = f"SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
            return connection.execute(query).fetchall()

        return [decode(row).key for row in await self._db.run(read)]

    async def _mark_revoked(self, key_id: str, at: float) -> None:
        def revoke(connection: sqlite3.Connection) -> None:
            with transaction(connection):
                connection.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                    (at, key_id),
                )

        await self._db.run(revoke)

    async def any_keys(self) -> bool:
        def read(connection: sqlite3.Connection) -> bool:
            return connection.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None

        return await self._db.run(read)

    async def aclose(self) -> None:
        await self._db.close()
