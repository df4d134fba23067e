"""What only the SQLite backend does: persistence, sharing one file, WAL, bad paths."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

from helios.cache.backends.base import EntryInfo
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


OLD_SCHEMA = (
    "CREATE TABLE cache_entries ("
    " key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL, last_access REAL NOT NULL)",
    "CREATE INDEX cache_entries_last_access ON cache_entries (last_access)",
    "CREATE INDEX cache_entries_expires_at ON cache_entries (expires_at)",
)


def write_old_file(path: Path, rows: list[tuple[str, bytes, float | None, float]]) -> None:
    """A cache file as the version before access counts wrote it."""
    connection = sqlite3.connect(path)
    with connection:
        for statement in OLD_SCHEMA:
            connection.execute(statement)
        connection.executemany("INSERT INTO cache_entries VALUES (?, ?, ?, ?)", rows)
    connection.close()


def columns_of(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    names = [row[1] for row in connection.execute("PRAGMA table_info(cache_entries)")]
    connection.close()
    return names


async def test_a_file_from_before_access_counts_is_migrated(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "old.sqlite3"
    write_old_file(
        path,
        [
            ("old", b"kept", None, clock.now - 50),
            ("older", b"v", clock.now + 100, clock.now - 80),
            ("stale", b"v", clock.now - 1, clock.now - 90),
        ],
    )
    backend = await SQLiteBackend.open(path, max_entries=3, clock=clock)
    try:
        assert columns_of(path)[-3:] == ["access_count", "accessed_at", "created_at"]
        # old rows: never counted, created at their last eviction stamp, TTLs kept
        assert await backend.info("old") == EntryInfo("old", 4, 0, None, clock.now - 50, None)
        older = await backend.info("older")
        assert older is not None and older.expires_at == clock.now + 100
        assert await backend.info("stale") is None
        clock.advance(1)
        assert await backend.get("old") == b"kept"
        assert await backend.info("old") == EntryInfo("old", 4, 1, clock.now, clock.now - 51, None)
        # eviction order survives: "older" was used least recently
        await backend.set("new", b"v", ttl_s=None)
        await backend.set("newer", b"v", ttl_s=None)
        assert sorted([key async for key in backend.scan()]) == ["new", "newer", "old"]
    finally:
        await backend.aclose()
    again = await SQLiteBackend.open(path, clock=clock)  # migrating twice is a no-op
    try:
        assert (await again.get("old"), columns_of(path).count("access_count")) == (b"kept", 1)
    finally:
        await again.aclose()


async def test_two_instances_migrate_one_old_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    write_old_file(path, [("k", b"v", None, 1.0)])
    one, two = SQLiteBackend(path), SQLiteBackend(path)
    try:
        assert list(await asyncio.gather(one.get("k"), two.get("k"))) == [b"v", b"v"]
        info = await one.info("k")
        assert info is not None and info.access_count == 2
    finally:
        await one.aclose()
        await two.aclose()


async def test_rows_written_by_an_older_version_after_the_migration(tmp_path: Path) -> None:
    """An older process on the same file keeps inserting rows without the new columns."""
    clock = FakeClock()
    path = tmp_path / "shared.sqlite3"
    backend = await SQLiteBackend.open(path, clock=clock)
    try:
        connection = sqlite3.connect(path)
        with connection:
            connection.execute(
                "INSERT INTO cache_entries (key, value, expires_at, last_access)"
                " VALUES ('legacy', x'0102', NULL, ?)",
                (clock.now - 7,),
            )
        connection.close()
        assert await backend.info("legacy") == EntryInfo("legacy", 2, 0, None, clock.now - 7, None)
        assert await backend.get("legacy") == b"\x01\x02"
        listed = await backend.entries()
        assert [(info.key, info.access_count) for info in listed] == [("legacy", 1)]
    finally:
        await backend.aclose()


async def test_a_hit_keeps_the_eviction_stamp_ahead_within_one_tick(tmp_path: Path) -> None:
    """With a clock that stands still, the newest stamp + step decides the order."""
    clock = FakeClock()
    backend = SQLiteBackend(tmp_path / "cache.sqlite3", max_entries=3, clock=clock)
    try:
        for key in ["a", "b", "c"]:
            await backend.set(key, b"v", ttl_s=None)
        for key in ["b", "a", "c", "b"]:
            await backend.get(key)
        await backend.set("d", b"v", ttl_s=None)  # "a" is now the least recently used
        assert sorted([key async for key in backend.scan()]) == ["b", "c", "d"]
        info = await backend.info("b")
        assert info is not None and (info.access_count, info.last_access) == (2, clock.now)
    finally:
        await backend.aclose()
