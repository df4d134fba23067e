"""What differs between the durable stores: opening, bad locations, encoding limits, and
the factory that picks one from settings."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from helios.config.ledger import LedgerSettings
from helios.config.settings import load_settings
from helios.errors import ConfigError, LedgerError
from helios.ledger.events import ErrorEvent
from helios.ledger.factory import open_store
from helios.ledger.migrations import MIGRATIONS
from helios.ledger.postgres import PostgresLedgerStore
from helios.ledger.sqlite import SQLiteLedgerStore
from tests.ledger.conftest import Ledger, drop_schema, postgres_url, task_events


async def test_sqlite_creates_missing_directories(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "ledger.sqlite3"
    store = await SQLiteLedgerStore.open(path)
    try:
        assert path.exists()
        assert await store.migrations() == [m.name for m in MIGRATIONS]
    finally:
        await store.aclose()


async def test_sqlite_rejects_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not the pages you are looking for\n" * 200)
    with pytest.raises(LedgerError, match=rf"SQLite ledger {path}: file is not a database"):
        await SQLiteLedgerStore.open(path)


async def test_sqlite_rejects_a_directory(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match=rf"SQLite ledger {tmp_path}: unable to open"):
        await SQLiteLedgerStore.open(tmp_path)


async def test_lone_surrogates_are_stored_as_replacement_characters(
    durable_ledger: Ledger,
) -> None:
    store = durable_ledger.open()
    # a valid event (pydantic accepts the string) that UTF-8 cannot encode
    event = ErrorEvent(task_id="t", kind="decode", message="bad \udcff byte")
    await store.append([event])
    assert await store.query() == [event.model_copy(update={"message": "bad \ufffd byte"})]


async def test_nul_characters(durable_ledger: Ledger) -> None:
    store = durable_ledger.open()
    event = ErrorEvent(task_id="t\x00", kind="binary", message="a\x00b \\u0000 c")
    await store.append([event])
    (stored,) = await store.query()
    if durable_ledger.kind == "sqlite":
        assert stored == event
    else:  # JSONB and text columns cannot hold NUL
        assert stored == event.model_copy(
            update={"task_id": "t\ufffd", "message": "a\ufffdb \\u0000 c"}
        )


async def test_postgres_unreachable_fails_fast_without_the_password() -> None:
    url = "postgresql://helios:s3cret-pw@127.0.0.1:1/ledger"
    started = time.monotonic()
    with pytest.raises(LedgerError) as caught:
        await PostgresLedgerStore.open(url, connect_timeout_s=2)
    message = str(caught.value)
    assert message.startswith("cannot connect to the PostgreSQL ledger at 127.0.0.1:1/ledger:")
    assert "\n" not in message and "s3cret" not in message
    assert time.monotonic() - started < 10


async def test_postgres_server_that_never_answers_times_out() -> None:
    # a socket that listens but never accepts: the kernel completes the TCP handshake, and
    # the startup message then waits for an answer that never comes
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(LedgerError, match=rf"at 127\.0\.0\.1:{port}/ledger"):
            await PostgresLedgerStore.open(
                f"postgresql://helios@127.0.0.1:{port}/ledger", connect_timeout_s=2
            )
        assert 1.5 < time.monotonic() - started < 10


def test_postgres_schema_names_are_checked() -> None:
    with pytest.raises(ConfigError, match="ledger schema"):
        PostgresLedgerStore("postgresql://localhost/db", schema="Robert'); DROP TABLE")


async def test_postgres_failures_after_open_are_ledger_errors() -> None:
    import psycopg

    url = postgres_url()
    schema = f"helios_test_gone_{time.time_ns()}"
    store = await PostgresLedgerStore.open(url, schema=schema)
    try:
        await store.append(task_events("a"))
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        with pytest.raises(LedgerError, match=r"PostgreSQL ledger .*events.* does not exist"):
            await store.count()
    finally:
        await store.aclose()


def test_factory_opens_sqlite_at_the_resolved_path(tmp_path: Path) -> None:
    store = open_store(LedgerSettings(path=tmp_path / "x" / "ledger.sqlite3"))
    assert isinstance(store, SQLiteLedgerStore)
    assert store.path == tmp_path / "x" / "ledger.sqlite3"
    default = open_store(LedgerSettings())
    assert isinstance(default, SQLiteLedgerStore)
    assert default.path == LedgerSettings().resolved_path()


def test_factory_postgres_needs_a_url() -> None:
    with pytest.raises(ConfigError, match=r"ledger\.postgres_url"):
        open_store(LedgerSettings(backend="postgres"))
    store = open_store(
        LedgerSettings(backend="postgres", postgres_url="postgresql://u:pw@db.example:6543/x")
    )
    assert isinstance(store, PostgresLedgerStore)
    assert store.location == "db.example:6543/x"


async def tables_in(url: str, schema: str) -> dict[str, int]:
    """The ledger tables that exist in ``schema`` and how many rows each holds."""
    import psycopg
    from psycopg import sql

    found: dict[str, int] = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        for table in ("events", "flag_overrides", "schema_migrations"):
            cursor = await connection.execute("SELECT to_regclass(%s)", (f"{schema}.{table}",))
            row = await cursor.fetchone()
            if row is None or row[0] is None:
                continue
            cursor = await connection.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            )
            counted = await cursor.fetchone()
            found[table] = int(counted[0]) if counted is not None else 0
    return found


async def test_the_postgres_schema_setting_holds_the_ledgers_tables() -> None:
    url = postgres_url()
    schema = f"helios_test_setting_{time.time_ns()}"
    settings = LedgerSettings(backend="postgres", postgres_url=url, postgres_schema=schema)
    store = open_store(settings)
    try:
        await store.append(task_events("a"))
        await store.set_flag_override("async_thesis", False, actor="ops", reason="test")
        assert await tables_in(url, schema) == {
            "events": len(task_events("a")) + 1,
            "flag_overrides": 1,
            "schema_migrations": len(MIGRATIONS),
        }
        # a second process configured alike reads the same ledger
        again = open_store(settings)
        try:
            assert await again.count() == len(task_events("a")) + 1
        finally:
            await again.aclose()
    finally:
        await store.aclose()
        await drop_schema(url, schema)


async def test_a_search_path_in_the_url_chooses_the_schema_and_other_options_stay() -> None:
    url = postgres_url()
    schema = f"helios_test_url_{time.time_ns()}"
    separator = "&" if "?" in url else "?"
    with_options = (
        f"{url}{separator}options=-c%20statement_timeout%3D4321%20-csearch_path%3D{schema},public"
    )
    store = PostgresLedgerStore(with_options)
    assert store.schema == schema
    try:
        await store.append(task_events("a"))
        assert (await tables_in(url, schema))["events"] == len(task_events("a"))
        async with store._connection() as connection:  # the store's own session settings
            cursor = await connection.execute("SHOW statement_timeout")
            assert await cursor.fetchone() == ("4321ms",)
            cursor = await connection.execute("SHOW search_path")
            assert await cursor.fetchone() == (schema,)
    finally:
        await store.aclose()
        await drop_schema(url, schema)
    # the setting wins over the URL
    chosen = open_store(
        LedgerSettings(backend="postgres", postgres_url=with_options, postgres_schema="other")
    )
    assert isinstance(chosen, PostgresLedgerStore) and chosen.schema == "other"


def test_a_bad_postgres_schema_setting_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"ledger\.postgres_schema"):
        load_settings(overrides={"ledger": {"postgres_schema": "Robert'); DROP TABLE"}})
