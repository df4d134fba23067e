"""The backend contract, run against every backend kind (see ``conftest.BACKEND_KINDS``)."""

from __future__ import annotations

import asyncio

import pytest

from helios.cache.backends.base import CacheBackend, EntryInfo
from tests.cache.conftest import FakeClock, MakeBackend


async def keys(backend: CacheBackend, prefix: str = "") -> list[str]:
    return sorted([key async for key in backend.scan(prefix)])


async def test_set_get_delete(make_backend: MakeBackend) -> None:
    backend = make_backend()
    assert await backend.get("a") is None
    await backend.set("a", b"one", ttl_s=None)
    assert await backend.get("a") == b"one"
    assert await backend.delete("a") is True
    assert await backend.get("a") is None
    assert await backend.delete("a") is False


async def test_overwrite_replaces_value_and_ttl(
    make_backend: MakeBackend, clock: FakeClock
) -> None:
    backend = make_backend()
    await backend.set("a", b"short-lived", ttl_s=10)
    await backend.set("a", b"forever", ttl_s=None)
    clock.advance(100)
    assert await backend.get("a") == b"forever"
    assert await backend.count() == 1


async def test_ttl_expiry_follows_the_clock(make_backend: MakeBackend, clock: FakeClock) -> None:
    backend = make_backend()
    await backend.set("brief", b"x", ttl_s=10)
    await backend.set("kept", b"y", ttl_s=None)
    clock.advance(9.5)
    assert await backend.get("brief") == b"x"
    clock.advance(0.5)
    assert await backend.get("brief") is None
    assert await keys(backend) == ["kept"]
    assert await backend.count() == 1
    assert await backend.delete("brief") is False  # expired counts as absent
    clock.advance(10**9)
    assert await backend.get("kept") == b"y"


async def test_expired_entries_are_invisible_to_scan_count_and_delete_prefix(
    make_backend: MakeBackend, clock: FakeClock
) -> None:
    backend = make_backend()
    await backend.set("ns:old", b"1", ttl_s=1)
    await backend.set("ns:new", b"2", ttl_s=100)
    clock.advance(2)
    assert await keys(backend, "ns:") == ["ns:new"]
    assert await backend.count("ns:") == 1
    assert await backend.delete_prefix("ns:") == 1
    assert await backend.count() == 0


async def test_non_positive_ttl_stores_nothing(make_backend: MakeBackend) -> None:
    backend = make_backend()
    await backend.set("a", b"old", ttl_s=None)
    await backend.set("a", b"new", ttl_s=0)
    assert await backend.get("a") is None
    assert await backend.count() == 0


async def test_scan_count_and_delete_prefix_respect_namespaces(make_backend: MakeBackend) -> None:
    backend = make_backend()
    for key in ["l2:a:x:1", "l2:a:x:2", "l2:a:y:1", "l2:ab:x:1", "evidence:1", "l2"]:
        await backend.set(key, key.encode(), ttl_s=None)
    assert await keys(backend, "l2:a:") == ["l2:a:x:1", "l2:a:x:2", "l2:a:y:1"]
    assert await backend.count("l2:a:x:") == 2
    assert await backend.count("l2:") == 4
    assert await backend.count() == 6
    assert await backend.count("nothing") == 0
    assert await backend.delete_prefix("l2:a:") == 3
    assert await keys(backend) == ["evidence:1", "l2", "l2:ab:x:1"]
    assert await backend.delete_prefix("") == 3
    assert await backend.count() == 0


async def test_lru_eviction_at_max_entries(make_backend: MakeBackend) -> None:
    backend = make_backend(max_entries=3)
    for key in ["a", "b", "c"]:
        await backend.set(key, b"v", ttl_s=None)
    assert await backend.get("a") == b"v"  # "a" is now the most recent; "b" the least
    await backend.set("d", b"v", ttl_s=None)
    assert await keys(backend) == ["a", "c", "d"]
    await backend.set("c", b"w", ttl_s=None)  # a write refreshes recency too
    await backend.set("e", b"v", ttl_s=None)
    assert await keys(backend) == ["c", "d", "e"]
    assert await backend.count() == 3


async def test_expired_entries_make_room_before_live_ones(
    make_backend: MakeBackend, clock: FakeClock
) -> None:
    backend = make_backend(max_entries=2)
    await backend.set("live", b"v", ttl_s=None)
    await backend.set("dying", b"v", ttl_s=1)
    clock.advance(5)
    await backend.set("new", b"v", ttl_s=None)
    assert await keys(backend) == ["live", "new"]


async def test_binary_values_round_trip(make_backend: MakeBackend) -> None:
    backend = make_backend()
    value = bytes(range(256)) * 4 + b"\x00"
    await backend.set("bin", value, ttl_s=None)
    await backend.set("empty", b"", ttl_s=None)
    assert await backend.get("bin") == value
    assert await backend.get("empty") == b""


async def test_unicode_keys(make_backend: MakeBackend) -> None:
    backend = make_backend()
    names = ["l2:café:x:1", "l2:東京:x:1", "l2:東京:y:2", "l2:😀:x:1", "l2:\U0010ffff:x:1"]
    for name in names:
        await backend.set(name, name.encode(), ttl_s=None)
    for name in names:
        assert await backend.get(name) == name.encode()
    assert await keys(backend, "l2:東京:") == ["l2:東京:x:1", "l2:東京:y:2"]
    assert await keys(backend, "l2:\U0010ffff") == ["l2:\U0010ffff:x:1"]
    assert await backend.count("l2:😀") == 1


async def test_concurrent_sets_and_gets(make_backend: MakeBackend) -> None:
    backend = make_backend()

    async def write_then_read(n: int) -> bytes | None:
        await backend.set(f"k{n}", str(n).encode() * 100, ttl_s=60)
        return await backend.get(f"k{n}")

    results = await asyncio.gather(*(write_then_read(n) for n in range(50)))
    assert results == [str(n).encode() * 100 for n in range(50)]
    assert await backend.count("k") == 50
    again = await asyncio.gather(*(backend.get(f"k{n}") for n in range(50)))
    assert again == results


async def test_aclose_is_idempotent(make_backend: MakeBackend) -> None:
    backend = make_backend()
    await backend.set("a", b"v", ttl_s=None)
    await backend.aclose()
    await backend.aclose()


# -- access counts and entry info: tests without `clock` run on Redis too, where the test
# clock stands still (it stamps times there, but expiry is the server's)


async def listed(backend: CacheBackend, prefix: str = "", limit: int = 100) -> list[str]:
    return [info.key for info in await backend.entries(prefix, limit=limit)]


async def test_hits_are_counted_not_misses_or_looks(make_backend: MakeBackend) -> None:
    backend = make_backend()
    assert await backend.info("a") is None
    await backend.set("a", b"value", ttl_s=None)
    never_read = EntryInfo("a", 5, 0, None, created_at=backend.clock(), expires_at=None)
    assert await backend.info("a") == never_read
    for _ in range(3):
        assert await backend.get("a") == b"value"
    assert await backend.get("missing") is None
    assert await backend.info("missing") is None
    await backend.info("a")
    await backend.entries()
    info = await backend.info("a")
    assert info is not None
    assert (info.access_count, info.last_access) == (3, backend.clock())
    assert info.created_at == backend.clock() and info.size_bytes == 5


async def test_concurrent_hits_are_all_counted(make_backend: MakeBackend) -> None:
    backend = make_backend()
    await backend.set("a", b"v", ttl_s=None)
    assert await asyncio.gather(*(backend.get("a") for _ in range(40))) == [b"v"] * 40
    info = await backend.info("a")
    assert info is not None and info.access_count == 40


async def test_a_replacing_set_starts_a_new_entry(make_backend: MakeBackend) -> None:
    backend = make_backend()
    await backend.set("a", b"old", ttl_s=None)
    await backend.get("a")
    await backend.get("a")
    await backend.set("a", b"newer", ttl_s=60)
    info = await backend.info("a")
    assert info is not None
    assert (info.size_bytes, info.access_count, info.last_access) == (5, 0, None)
    assert info.expires_at == pytest.approx(backend.clock() + 60, abs=1)
    assert await backend.get("a") == b"newer"
    info = await backend.info("a")
    assert info is not None and info.access_count == 1


async def test_entry_times_follow_the_clock(make_backend: MakeBackend, clock: FakeClock) -> None:
    backend = make_backend()
    created = clock.now
    await backend.set("a", b"v", ttl_s=60)
    clock.advance(5)
    await backend.get("a")
    assert await backend.info("a") == EntryInfo("a", 1, 1, created + 5, created, created + 60)
    clock.advance(55)
    assert await backend.info("a") is None
    assert await backend.entries() == []
    assert await backend.get("a") is None


async def test_entries_most_recently_accessed_first(
    make_backend: MakeBackend, clock: FakeClock
) -> None:
    backend = make_backend()
    for key in ["l2:a:1", "l2:a:2", "l2:a:3", "l2:a:4", "l2:b:1", "l2:ab:1"]:
        await backend.set(key, b"v", ttl_s=None)
    await backend.set("l2:a:brief", b"v", ttl_s=2)
    await backend.get("l2:a:brief")
    for key in ["l2:a:3", "l2:a:1", "l2:b:1", "l2:ab:1", "l2:a:3"]:
        clock.advance(1)
        await backend.get(key)
    entries = await backend.entries("l2:a:")
    assert [info.key for info in entries] == ["l2:a:3", "l2:a:1", "l2:a:2", "l2:a:4"]
    assert [info.access_count for info in entries] == [2, 1, 0, 0]
    assert [info.last_access for info in entries] == [clock.now, clock.now - 3, None, None]
    assert await listed(backend, "l2:a:", limit=2) == ["l2:a:3", "l2:a:1"]
    assert await listed(backend, limit=3) == ["l2:a:3", "l2:ab:1", "l2:b:1"]
    assert await listed(backend, "l2:c:") == []


async def test_entries_ties_fall_back_to_key_order(make_backend: MakeBackend) -> None:
    backend = make_backend()
    for key in ["ns:d", "ns:c", "ns:b", "ns:a", "other:a"]:
        await backend.set(key, key.encode(), ttl_s=None)
    for key in ["ns:d", "ns:c", "other:a", "ns:c"]:
        await backend.get(key)
    entries = await backend.entries("ns:")
    # the clock stands still, so every hit happened at the same time
    assert [(info.key, info.access_count) for info in entries] == [
        ("ns:c", 2),
        ("ns:d", 1),
        ("ns:a", 0),
        ("ns:b", 0),
    ]
    assert all(info.size_bytes == len(info.key) for info in entries)
    assert await listed(backend, "ns:", limit=1) == ["ns:c"]
    assert await listed(backend, limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        await backend.entries(limit=-1)


async def test_delete_and_delete_prefix_remove_entry_info(make_backend: MakeBackend) -> None:
    backend = make_backend()
    for key in ["x:1", "x:2", "y:1"]:
        await backend.set(key, b"v", ttl_s=None)
        await backend.get(key)
    assert await backend.delete("x:1") is True
    assert await backend.info("x:1") is None
    assert await backend.delete_prefix("x:") == 1
    assert await backend.info("x:2") is None
    assert await listed(backend) == ["y:1"]
    await backend.set("x:1", b"again", ttl_s=None)
    info = await backend.info("x:1")
    assert info is not None and (info.access_count, info.last_access) == (0, None)


async def test_looking_does_not_refresh_eviction_order(make_backend: MakeBackend) -> None:
    backend = make_backend(max_entries=2)
    await backend.set("a", b"v", ttl_s=None)
    await backend.set("b", b"v", ttl_s=None)
    await backend.info("a")
    await backend.entries()
    await backend.set("c", b"v", ttl_s=None)
    assert await keys(backend) == ["b", "c"]
