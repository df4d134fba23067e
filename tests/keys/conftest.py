"""Key store fixtures: one factory per backend, so the contract runs against each.

``keys`` is parametrized over SQLite (a file in ``tmp_path``) and PostgreSQL (a fresh
schema of ``HELIOS_TEST_POSTGRES_URL``'s database, dropped afterwards). ``keys.open()``
returns another store instance on the same keys; every store opened is closed after the
test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helios.keys.sqlite import SQLiteKeyStore
from helios.keys.store import KeyStore
from tests.ledger.conftest import drop_schema, postgres_url


@dataclass
class Keys:
    kind: str
    path: Path | None = None
    url: str | None = None
    schema: str | None = None
    opened: list[KeyStore] = field(default_factory=list)

    def open(self) -> KeyStore:
        store: KeyStore
        if self.kind == "sqlite":
            assert self.path is not None
            store = SQLiteKeyStore(self.path)
        else:
            from helios.keys.postgres import PostgresKeyStore

            assert self.url is not None and self.schema is not None
            store = PostgresKeyStore(self.url, schema=self.schema)
        self.opened.append(store)
        return store


@pytest.fixture(params=["sqlite", "postgres"])
async def keys(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Keys]:
    if request.param == "sqlite":
        made = Keys("sqlite", path=tmp_path / "keys" / "keys.sqlite3")
    else:
        schema = f"helios_test_{uuid.uuid4().hex[:12]}"
        made = Keys("postgres", url=postgres_url(), schema=schema)
    try:
        yield made
    finally:
        for store in made.opened:
            await store.aclose()
        if made.schema is not None and made.url is not None:
            await drop_schema(made.url, made.schema)
