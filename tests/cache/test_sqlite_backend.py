"""What only the SQLite backend does: persistence, sharing one file, WAL, bad paths."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

from helios.cache.backends.sqlite import SQLiteBackend, _prefix_bounds
from helios.errors import CacheBackendError
from tests.cache.conftest import FakeClock


async def test_values_persist_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    first = await SQLiteBackend.open(path)
    await first.set("k", b"kept", ttl_s=None)
    await first.aclose()
    second = await SQLiteBackend.open(path)
    try:
        assert await second.get("k") == b"kept"
    finally:
        await second.aclose()


async def test_two_open_instances_see_each_others_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    one, two = SQLiteBackend(path), SQLiteBackend(path)
    try:
        await one.set("from-one", b"1", ttl_s=None)
        assert await two.get("from-one") == b"1"
        await two.set("from-two", b"2", ttl_s=None)
        assert await one.get("from-two") == b"2"
        assert await two.delete("from-one") is True
        assert await one.get("from-one") is None
        results = await asyncio.gather(
            *(backend.set(f"k{n}", b"v", ttl_s=None) for n in range(20) for backend in (one, two))
        )
        assert len(results) == 40
        assert await one.count("k") == await two.count("k") == 20
    finally:
        await one.aclose()
        await two.aclose()


async def test_another_process_sees_the_writes(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    backend = SQLiteBackend(path)
    try:
        await backend.set("parent", b"hello", ttl_s=None)
        script = (
            "import asyncio, sys\n"
            "from helios.cache.backends.sqlite import SQLiteBackend\n"
            "async def main():\n"
            "    backend = SQLiteBackend(sys.argv[1])\n"
            "    assert await backend.get('parent') == b'hello'\n"
            "    await backend.set('child', b'hi back', ttl_s=None)\n"
            "    await backend.aclose()\n"
            "asyncio.run(main())\n"
        )
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(path))
        assert await child.wait() == 0
        assert await backend.get("child") == b"hi back"
    finally:
        await backend.aclose()


async def test_eviction_holds_across_instances(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "cache.sqlite3"
    one = SQLiteBackend(path, max_entries=2, clock=clock)
    two = SQLiteBackend(path, max_entries=2, clock=clock)
    try:
        await one.set("a", b"v", ttl_s=None)
        await two.set("b", b"v", ttl_s=None)
        assert await one.get("a") == b"v"
        await two.set("c", b"v", ttl_s=None)
        assert sorted([key async for key in one.scan()]) == ["a", "c"]
    finally:
        await one.aclose()
        await two.aclose()


async def test_the_file_uses_wal_and_parents_are_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "cache.sqlite3"
    backend = await SQLiteBackend.open(path)
    await backend.set("k", b"v", ttl_s=None)
    await backend.aclose()
    with sqlite3.connect(path) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    connection.close()
    assert mode == "wal"


@pytest.mark.parametrize("kind", ["directory", "text file", "under a file"])
async def test_an_unusable_path_raises_cache_backend_error(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        path = tmp_path / "a-directory"
        path.mkdir()
    elif kind == "text file":
        path = tmp_path / "notes.txt"
        path.write_text("these are not the pages you are looking for\n" * 100)
    else:
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "cache.sqlite3"
    with pytest.raises(CacheBackendError):
        await SQLiteBackend.open(path)
    lazy = SQLiteBackend(path)
    with pytest.raises(CacheBackendError):
        await lazy.get("k")
    await lazy.aclose()


async def test_a_closed_backend_raises_cache_backend_error(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "cache.sqlite3")
    await backend.aclose()
    with pytest.raises(CacheBackendError, match="closed"):
        await backend.set("k", b"v", ttl_s=None)


async def test_a_large_value_round_trips(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "cache.sqlite3")
    value = bytes(range(256)) * 40_000  # ~10 MB
    try:
        await backend.set("big", value, ttl_s=None)
        assert await backend.get("big") == value
    finally:
        await backend.aclose()


@pytest.mark.parametrize(
    ("prefix", "high"),
    [
        ("", None),
        ("l2:", "l2;"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff\U0010ffff", None),
        ("x\ud7ff", "x\ue000"),
    ],
)
def test_prefix_bounds(prefix: str, high: str | None) -> None:
    assert _prefix_bounds(prefix) == (prefix, high)
