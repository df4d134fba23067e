"""What only the embedded index does: graphs saved beside the SQLite file and rebuilt from
its rows when they are missing, damaged or stale, and other processes' rows seen."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy
import pytest

from helios.cache.backends import usearch as usearch_module
from helios.cache.backends.sqlite import SQLiteBackend
from helios.cache.backends.usearch import LoadReport, UsearchIndex
from helios.cache.backends.vector import IndexStats
from helios.errors import CacheBackendError
from tests.cache.conftest import FakeClock
from tests.cache.vector_conftest import DIM, entry, unit

GRAPH_SIZE = 8  # contexts from this size get a graph in these tests


def index_at(path: Path, clock: FakeClock | None = None, **options: Any) -> UsearchIndex:
    options.setdefault("hnsw_min_entries", GRAPH_SIZE)
    if clock is not None:
        options["clock"] = clock
    return UsearchIndex(path, DIM, **options)


async def fill(index: UsearchIndex, big: int = 20, small: int = 3) -> None:
    """``big`` entries in context "big" (a graph), ``small`` in "small" (an exact scan)."""
    for number in range(big):
        await index.add(entry(f"big{number}", context="big"), unit(number))
    for number in range(small):
        await index.add(entry(f"small{number}", context="small"), unit(1000 + number))


async def assert_all_found(index: UsearchIndex, big: int = 20, small: int = 3) -> None:
    for number in range(big):
        [match] = await index.search("big", unit(number), k=1)
        assert match.entry.entry_id == f"big{number}"
        assert match.score == pytest.approx(1.0, abs=1e-5)
    for number in range(small):
        [match] = await index.search("small", unit(1000 + number), k=1)
        assert match.entry.entry_id == f"small{number}"


async def test_graphs_are_saved_on_close_and_loaded_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    index = index_at(path)
    await fill(index)
    await index.aclose()
    saved = sorted(child.name for child in index.index_dir.iterdir())
    assert saved[-1] == "manifest.json"
    assert len(saved) == 2  # one graph ("big"); the small context is not saved
    reopened = await UsearchIndex.open(path, DIM, hnsw_min_entries=GRAPH_SIZE)
    assert reopened.load_report == LoadReport(from_files=1, rebuilt=0, exact=1)
    await assert_all_found(reopened)
    await reopened.aclose()


async def test_deleted_index_files_are_rebuilt_from_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    index = index_at(path)
    await fill(index)
    await index.aclose()
    shutil.rmtree(path.with_name(path.name + ".usearch"))
    reopened = await UsearchIndex.open(path, DIM, hnsw_min_entries=GRAPH_SIZE)
    assert reopened.load_report == LoadReport(from_files=0, rebuilt=1, exact=1)
    await assert_all_found(reopened)
    await reopened.aclose()
    again = await UsearchIndex.open(path, DIM, hnsw_min_entries=GRAPH_SIZE)
    assert again.load_report == LoadReport(from_files=1, rebuilt=0, exact=1)
    await again.aclose()


@pytest.mark.parametrize("damage", ["graph-bytes", "graph-truncated", "manifest"])
async def test_damaged_index_files_are_rebuilt_from_the_rows(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "cache.sqlite3"
    index = index_at(path)
    await fill(index)
    await index.aclose()
    [graph_file] = index.index_dir.glob("*.usearch")
    data = bytearray(graph_file.read_bytes())
    if damage == "graph-bytes":
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # same size, other bytes
        graph_file.write_bytes(bytes(data))
    elif damage == "graph-truncated":
        graph_file.write_bytes(bytes(data[: len(data) // 3]))
    else:
        (index.index_dir / "manifest.json").write_text("{not json")
    reopened = await UsearchIndex.open(path, DIM, hnsw_min_entries=GRAPH_SIZE)
    assert reopened.load_report == LoadReport(from_files=0, rebuilt=1, exact=1)
    await assert_all_found(reopened)
    await reopened.aclose()


async def test_a_graph_saved_with_other_settings_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    index = index_at(path, dtype="f32")
    await fill(index)
    await index.aclose()
    reopened = await UsearchIndex.open(path, DIM, hnsw_min_entries=GRAPH_SIZE, dtype="f16")
    assert reopened.load_report == LoadReport(from_files=0, rebuilt=1, exact=1)
    await reopened.aclose()


async def test_rows_written_by_another_index_are_found_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    first = index_at(path)
    await fill(first)
    await first.aclose()  # graphs saved
    second = index_at(path)
    await second.add(entry("late", context="big"), unit(500))
    await second.add(entry("late-small", context="small"), unit(501))
    # the saved graph no longer holds every row of "big": stale, so rebuilt
    reopened = await UsearchIndex.open(path, DIM, hnsw_min_entries=GRAPH_SIZE)
    assert reopened.load_report == LoadReport(from_files=0, rebuilt=1, exact=1)
    [match] = await reopened.search("big", unit(500), k=1)
    assert match.entry.entry_id == "late"
    [match] = await reopened.search("small", unit(501), k=1)
    assert match.entry.entry_id == "late-small"
    await assert_all_found(reopened)
    await second.aclose()
    await reopened.aclose()


async def test_other_processes_changes_are_seen_while_open(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    reader, writer = index_at(path), index_at(path)
    await fill(reader)
    await writer.add(entry("new-big", context="big"), unit(700))
    await writer.add(entry("new-context"), unit(701))
    assert [m.entry.entry_id for m in await reader.search("big", unit(700), k=1)] == ["new-big"]
    assert [m.entry.entry_id for m in await reader.search("ctx", unit(701), k=1)] == ["new-context"]
    # replaced elsewhere: the old vector no longer matches here
    await writer.add(entry("big3", context="big", reply=b"moved"), unit(800))
    everything = await reader.search("big", unit(3), k=50)
    [replaced] = [m for m in everything if m.entry.entry_id == "big3"]
    assert replaced.score == pytest.approx(float(unit(3) @ unit(800)), abs=1e-5)
    [match] = await reader.search("big", unit(800), k=1)
    assert (match.entry.entry_id, match.entry.reply) == ("big3", b"moved")
    # deleted elsewhere: skipped, and the search still fills k from the live entries
    assert await writer.delete("big5") is True
    await writer.add(entry("big5b", context="big"), unit(5))
    matches = await reader.search("big", unit(5), k=3)
    assert matches[0].entry.entry_id == "big5b"
    assert "big5" not in {m.entry.entry_id for m in matches}
    await reader.aclose()
    await writer.aclose()


async def test_a_search_fills_k_past_entries_deleted_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    reader, writer = index_at(path), index_at(path)
    await fill(reader, big=30)
    for number in range(10):
        assert await writer.delete(f"big{number}") is True
    matches = await reader.search("big", unit(0), k=15)
    assert len(matches) == 15
    assert all(int(m.entry.entry_id[3:]) >= 10 for m in matches)
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    await reader.aclose()
    await writer.aclose()


async def test_graphs_are_saved_periodically(tmp_path: Path) -> None:
    index = index_at(tmp_path / "cache.sqlite3", persist_interval_s=0)
    await fill(index, big=10, small=0)
    manifest = json.loads((index.index_dir / "manifest.json").read_text())
    [record] = manifest["graphs"].values()
    assert record["count"] == 10
    await index.aclose()


async def test_shares_its_file_with_the_l2_cache(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    l2 = SQLiteBackend(path)
    l3 = index_at(path)
    await l2.set("l2:key", b"exact", ttl_s=None)
    await l3.add(entry("semantic"), unit(1))
    assert await l2.get("l2:key") == b"exact"
    assert [m.entry.entry_id for m in await l3.search("ctx", unit(1), k=1)] == ["semantic"]
    assert await l2.count() == 1
    assert await l3.stats() == IndexStats(entries=1, contexts=1)
    await l2.aclose()
    await l3.aclose()
    with sqlite3.connect(path) as connection:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
    assert {"cache_entries", "semantic_entries"} <= tables


async def test_expired_rows_are_deleted_lazily(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "cache.sqlite3"
    index = index_at(path, clock)
    await index.add(entry("brief", expires_at=clock.now + 5), unit(1))
    await index.add(entry("brief-big", context="big", expires_at=clock.now + 5), unit(2))
    clock.advance(5)
    assert await index.search("ctx", unit(1), k=1) == []
    await index.add(entry("kept"), unit(3))
    with sqlite3.connect(path) as connection:
        (rows,) = connection.execute("SELECT COUNT(*) FROM semantic_entries").fetchone()
    assert rows == 1
    await index.aclose()


async def test_a_context_growing_into_a_graph_keeps_every_entry(tmp_path: Path) -> None:
    index = index_at(tmp_path / "cache.sqlite3", hnsw_min_entries=16)
    vectors = numpy.stack([unit(number) for number in range(40)])
    for number in range(40):
        await index.add(entry(f"e{number}"), vectors[number])
    query = unit(999)
    expected = [f"e{n}" for n in numpy.argsort(-(vectors @ query))[:5]]
    assert [m.entry.entry_id for m in await index.search("ctx", query, k=5)] == expected
    await index.aclose()


async def test_heavy_removal_rebuilds_the_graph_without_losing_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usearch_module, "_TOMBSTONE_SLACK", 4)
    index = index_at(tmp_path / "cache.sqlite3")
    await fill(index, big=30, small=0)
    for number in range(20):
        assert await index.delete(f"big{number}") is True
    for number in range(20, 30):
        [match] = await index.search("big", unit(number), k=1)
        assert match.entry.entry_id == f"big{number}"
    assert len(await index.search("big", unit(0), k=30)) == 10
    await index.aclose()


async def test_another_dimension_in_the_same_file_is_invisible(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    small, large = UsearchIndex(path, DIM), UsearchIndex(path, DIM * 2)
    await small.add(entry("a"), unit(1))
    await large.add(entry("a"), unit(1, DIM * 2))
    await large.add(entry("b"), unit(2, DIM * 2))
    assert await small.stats() == IndexStats(entries=1, contexts=1)
    assert await large.stats() == IndexStats(entries=2, contexts=1)
    assert [m.entry.entry_id for m in await small.search("ctx", unit(1), k=5)] == ["a"]
    await small.aclose()
    await large.aclose()


async def test_an_unusable_path_fails_with_the_path_named(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir()
    with pytest.raises(CacheBackendError, match="a-directory"):
        await UsearchIndex.open(directory, DIM)
    index = UsearchIndex(directory, DIM)
    with pytest.raises(CacheBackendError, match="a-directory"):
        await index.ping()
    with pytest.raises(CacheBackendError, match="a-directory"):
        await index.search("ctx", unit(1), k=1)
    await index.aclose()
