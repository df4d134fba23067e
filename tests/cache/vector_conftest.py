"""Fixtures for the L3 vector indexes. The vector test modules bind the ones they use
(``make_index = vector_conftest.make_index``); ``tests/cache/conftest.py`` holds the L2
backends' fixtures and the ``clock``.

``make_index`` is parametrized over the index kinds, so a suite that takes it runs against
each: ``usearch`` (small contexts, scanned exactly), ``usearch-hnsw`` (every context a
graph, so the HNSW path meets the same contract) and ``pgvector``.

pgvector needs a PostgreSQL with the ``vector`` extension, which the machine's server
lacks: the ``pgvector_url`` fixture starts one for the session from the ``pgserver`` wheel
(PostgreSQL 16.2 with pgvector 0.6.2, in a fresh directory under the system temp dir,
reached over a Unix socket there, deleted at the end), or uses ``HELIOS_TEST_PGVECTOR_URL``
when set. As a normal user pgserver runs the server as that user. As root (initdb refuses
root) it creates a system user ``pgserver`` with ``useradd``, gives it the data directory
and opens every directory above it to traversal (o+rx). When it cannot start, the pgvector
tests skip with the reason, or fail under HELIOS_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy
import pytest

from helios.cache.backends.usearch import UsearchIndex
from helios.cache.backends.vector import SemanticEntry, VectorIndex
from tests.cache.conftest import FakeClock

VECTOR_KINDS = ["usearch", "usearch-hnsw", "pgvector"]
PGVECTOR_URL_ENV = "HELIOS_TEST_PGVECTOR_URL"
DIM = 16

MakeIndex = Callable[..., VectorIndex]
"""``make_index(**options)``: an index on the test's store (file or table) and ``clock``;
each call is another handle on the same store, as a second process would open it."""


def unit(seed: int, dim: int = DIM) -> numpy.ndarray[Any, numpy.dtype[numpy.float32]]:
    """A random unit vector, the same for the same seed."""
    vector = numpy.random.default_rng(seed).standard_normal(dim).astype(numpy.float32)
    return vector / numpy.linalg.norm(vector)


def entry(
    entry_id: str,
    *,
    context: str = "ctx",
    tenant: str = "acme",
    task_type: str = "chat",
    reply: bytes | None = None,
    created_at: float = 1_000_000.0,
    expires_at: float | None = None,
) -> SemanticEntry:
    return SemanticEntry(
        entry_id=entry_id,
        context=context,
        tenant=tenant,
        task_type=task_type,
        question=f"question {entry_id}?",
        reply=reply if reply is not None else f"reply {entry_id}".encode(),
        created_at=created_at,
        expires_at=expires_at,
    )


def _unavailable(reason: str) -> None:
    if os.environ.get("HELIOS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"HELIOS_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """A PostgreSQL with pgvector for the session: ``HELIOS_TEST_PGVECTOR_URL`` or pgserver."""
    configured = os.environ.get(PGVECTOR_URL_ENV)
    if configured:
        yield configured
        return
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (as in containers); pgserver
        # then keeps its lock file under /tmp, which is fine for tests
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        try:
            import pgserver
        except ImportError:
            _unavailable(
                "the pgserver wheel is not installed (pip install pgserver==0.1.4, in the"
                f" dev extra), and {PGVECTOR_URL_ENV} is unset: no PostgreSQL with pgvector"
            )
        # not under pytest's basetemp: every pytest run resets that to mode 0700, which
        # locks out the "pgserver" user the server runs as when tests run as root
        pgdata = Path(tempfile.mkdtemp(prefix="helios-pgvector-")) / "pgdata"
        try:
            server = pgserver.get_server(pgdata, cleanup_mode="delete")
        except Exception as exc:  # whatever failed, the reason must reach the report
            shutil.rmtree(pgdata.parent, ignore_errors=True)
            _unavailable(f"pgserver could not start PostgreSQL in {pgdata}: {exc!r}")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(pgdata.parent, ignore_errors=True)


async def drop_table(url: str, table: str) -> None:
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def fresh_table() -> str:
    return f"semantic_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=VECTOR_KINDS)
async def make_index(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[MakeIndex]:
    kind: str = request.param
    made: list[VectorIndex] = []
    url = request.getfixturevalue("pgvector_url") if kind == "pgvector" else ""
    table = fresh_table()

    def make(**options: Any) -> VectorIndex:
        index: VectorIndex
        if kind == "pgvector":
            from helios.cache.backends.pgvector import PgvectorIndex

            index = PgvectorIndex(url, DIM, table=table, clock=clock, **options)
        else:
            if kind == "usearch-hnsw":
                options.setdefault("hnsw_min_entries", 1)
            index = UsearchIndex(tmp_path / "cache.sqlite3", DIM, clock=clock, **options)
        made.append(index)
        return index

    yield make
    for index in made:
        await index.aclose()
    if kind == "pgvector":
        await drop_table(url, table)
