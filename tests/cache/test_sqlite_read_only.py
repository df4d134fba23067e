"""A SQLite cache in a data directory this process may not write: its entries are still
served (hits, uncounted), stores are skipped with one warning, and nothing is written.

Tests may run as root, whom ``chmod`` does not stop; Helios reads the permission bits as
well (a file or directory no one may write was made read-only on purpose), so the same
test holds for root and for anyone else.
"""

from __future__ import annotations

import hashlib
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from helios.cache.backends.sqlite import SQLiteBackend
from helios.cache.exact import ExactCache
from helios.cache.manager import CacheManager
from helios.catalog import Catalog
from helios.errors import CacheBackendError
from helios.sqlite_db import writable
from tests.cache.conftest import one_chunk_reply


def digest(directory: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.iterdir())
    }


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/data`` holding a cache file with two entries, then made read-only (file
    and directory); write access comes back after the test, so that it can be removed."""
    data = tmp_path / "data"
    yield data
    for path in (data, *data.iterdir()):
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


async def fill(path: Path) -> None:
    backend = SQLiteBackend(path)
    cache = ExactCache(backend)
    assert await cache.store("l2:acme:chat:one", one_chunk_reply("first"))
    assert await cache.store("l2:acme:chat:two", one_chunk_reply("second"))
    await backend.aclose()


def make_read_only(data: Path) -> None:
    for path in (*data.iterdir(), data):
        path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)


async def test_a_read_only_cache_serves_its_entries_and_skips_stores(
    read_only_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = read_only_dir / "cache.sqlite3"
    await fill(path)
    make_read_only(read_only_dir)
    assert not writable(path)
    before = digest(read_only_dir)

    backend = SQLiteBackend(path)
    cache = ExactCache(backend)
    manager = CacheManager(Catalog.load(), exact=cache)
    try:
        with caplog.at_level(logging.WARNING):
            found = await cache.lookup("l2:acme:chat:one")
            assert found is not None and found.text == "first"
            assert backend.read_only
            assert await cache.lookup("l2:acme:chat:missing") is None
            for n in range(3):
                await cache.store(f"l2:acme:chat:new{n}", one_chunk_reply("not kept"))
            assert await cache.lookup("l2:acme:chat:new0") is None
            assert await backend.count() == 2
            assert [e.key for e in await backend.entries()] == [
                "l2:acme:chat:one",
                "l2:acme:chat:two",
            ]
        warnings = [r for r in caplog.records if "read-only" in r.getMessage()]
        assert len(warnings) == 1  # one warning, not one per store
        assert cache.stats.total.errors == 0  # a skipped store is no failure
        with pytest.raises(CacheBackendError, match="read-only"):
            await backend.delete("l2:acme:chat:one")
        with pytest.raises(CacheBackendError, match="read-only"):
            await backend.delete_prefix("")
        health = await manager.health()
        assert health.layers["L2"].status == "ok"
        assert "read-only" in health.layers["L2"].detail
    finally:
        await backend.aclose()
    assert digest(read_only_dir) == before  # not a byte written, root or not


async def test_a_writable_cache_is_opened_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    await fill(path)
    backend = SQLiteBackend(path)
    try:
        assert await backend.get("l2:acme:chat:one") is not None
        assert not backend.read_only
        await backend.set("l2:acme:chat:three", b"x", ttl_s=None)
        assert await backend.count() == 3
    finally:
        await backend.aclose()


async def test_a_missing_file_in_a_read_only_directory_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "empty"
    data.mkdir()
    data.chmod(0o555)
    backend = SQLiteBackend(data / "cache.sqlite3")
    try:
        with pytest.raises(CacheBackendError, match=r"cache\.sqlite3"):
            await backend.get("l2:acme:chat:one")
    finally:
        await backend.aclose()
        data.chmod(0o755)
