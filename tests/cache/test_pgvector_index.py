"""What only the shared index does: one table for several processes, its schema, and
failures that name the server (never the password)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import psycopg
import pytest

from helios.cache.backends.pgvector import PgvectorIndex
from helios.cache.backends.vector import IndexStats
from helios.errors import CacheBackendError, ConfigError
from tests.cache import vector_conftest
from tests.cache.vector_conftest import DIM, drop_table, entry, fresh_table, unit

# the session's PostgreSQL with pgvector, made visible to this module's tests
pgvector_url = vector_conftest.pgvector_url

Open = Callable[..., PgvectorIndex]
UNREACHABLE = "postgresql://helios:s3cret-pw@127.0.0.1:1/nowhere"


@pytest.fixture
async def open_index(pgvector_url: str) -> AsyncIterator[Open]:
    """``open_index(table=None, dim=DIM)``: a handle on a fresh table (or the one named);
    tables and handles are dropped and closed after the test."""
    tables: list[str] = []
    made: list[PgvectorIndex] = []

    def make(table: str | None = None, dim: int = DIM) -> PgvectorIndex:
        if table is None:
            table = fresh_table()
        tables.append(table)
        index = PgvectorIndex(pgvector_url, dim, table=table)
        made.append(index)
        return index

    yield make
    for index in made:
        await index.aclose()
    for table in set(tables):
        await drop_table(pgvector_url, table)


async def test_two_processes_share_one_table(open_index: Open) -> None:
    first = open_index()
    second = open_index(first.table)
    await first.add(entry("a", context="shared"), unit(1))
    await second.add(entry("b", context="shared"), unit(2))
    assert [m.entry.entry_id for m in await second.search("shared", unit(1), k=1)] == ["a"]
    assert [m.entry.entry_id for m in await first.search("shared", unit(2), k=1)] == ["b"]
    await second.add(entry("a", context="shared", reply=b"replaced"), unit(3))
    assert (await first.get("a")) == entry("a", context="shared", reply=b"replaced")
    assert await second.delete("b") is True
    assert await first.get("b") is None
    assert await first.stats() == IndexStats(entries=1, contexts=1)
    assert await second.invalidate() == 1
    assert await first.search("shared", unit(3), k=5) == []


async def test_the_table_has_a_cosine_hnsw_index_and_a_context_index(
    open_index: Open, pgvector_url: str
) -> None:
    index = open_index()
    await index.ping()
    async with await psycopg.AsyncConnection.connect(pgvector_url) as connection:
        cursor = await connection.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s", (index.table,)
        )
        definitions = [definition for (definition,) in await cursor.fetchall()]
    assert any("USING hnsw (embedding vector_cosine_ops)" in d for d in definitions)
    assert any("USING btree (context)" in d for d in definitions)


async def test_quoted_and_long_table_names_each_get_their_own_indexes(
    open_index: Open, pgvector_url: str
) -> None:
    stem = "Semantic_" + "x" * 48  # 57 characters: "<table>_embedding" would pass 63
    tables = [f"{stem}_one", f"{stem}_two"]
    for number, table in enumerate(tables):
        index = open_index(table)
        await index.add(entry(f"e{number}"), unit(number))
        assert [m.entry.entry_id for m in await index.search("ctx", unit(number), k=5)] == [
            f"e{number}"
        ]
    async with await psycopg.AsyncConnection.connect(pgvector_url) as connection:
        for table in tables:
            cursor = await connection.execute(
                "SELECT COUNT(*) FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
                (table, "%USING hnsw%"),
            )
            assert await cursor.fetchone() == (1,)


async def test_a_table_of_another_dimension_is_refused(open_index: Open) -> None:
    existing = open_index()
    await existing.ping()
    wider = open_index(existing.table, dim=DIM * 2)
    with pytest.raises(CacheBackendError, match=f"{DIM}-dimensional vectors, not {DIM * 2}"):
        await wider.ping()


async def test_an_unreachable_server_fails_naming_it_without_the_password() -> None:
    index = PgvectorIndex(UNREACHABLE, DIM, connect_timeout_s=1)
    for attempt in (index.ping(), index.search("ctx", unit(1), k=1), index.stats()):
        with pytest.raises(CacheBackendError) as raised:
            await attempt
        assert "127.0.0.1:1/nowhere" in str(raised.value)
        assert "s3cret-pw" not in str(raised.value)
    await index.aclose()
    with pytest.raises(CacheBackendError, match=r"127\.0\.0\.1:1/nowhere"):
        await PgvectorIndex.open(UNREACHABLE, DIM, connect_timeout_s=1)


def test_bad_table_names_and_urls_are_config_errors() -> None:
    for table in ["semantic-cache", "1table", "x; DROP TABLE y", "t" * 64, ""]:
        with pytest.raises(ConfigError, match="table"):
            PgvectorIndex("postgresql://localhost/test", DIM, table=table)
    with pytest.raises(ConfigError) as raised:
        PgvectorIndex("postgresql://u:s3cret-pw@host:5432/db?bogus=1", DIM)
    assert "s3cret-pw" not in str(raised.value)
