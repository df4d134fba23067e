"""What only the memory backend does: a byte budget."""

from __future__ import annotations

import pytest

from helios.cache.backends.memory import MemoryBackend


async def keys(backend: MemoryBackend) -> list[str]:
    return [key async for key in backend.scan()]


async def test_max_bytes_evicts_least_recently_used() -> None:
    backend = MemoryBackend(max_entries=100, max_bytes=300)
    for key in ["a", "b", "c"]:
        await backend.set(key, b"x" * 99, ttl_s=None)  # 100 bytes each with the key
    assert backend.size_bytes == 300
    assert await backend.get("a") is not None
    await backend.set("d", b"x" * 99, ttl_s=None)
    assert await keys(backend) == ["c", "a", "d"]
    assert backend.size_bytes == 300


async def test_one_big_value_evicts_as_many_as_needed() -> None:
    backend = MemoryBackend(max_bytes=300)
    for key in ["a", "b", "c"]:
        await backend.set(key, b"x" * 99, ttl_s=None)
    await backend.set("big", b"x" * 250, ttl_s=None)
    assert await keys(backend) == ["big"]


async def test_a_value_larger_than_the_budget_is_not_stored_and_flushes_nothing() -> None:
    backend = MemoryBackend(max_bytes=100)
    await backend.set("small", b"x" * 10, ttl_s=None)
    await backend.set("huge", b"x" * 1000, ttl_s=None)
    assert await backend.get("huge") is None
    assert await backend.get("small") == b"x" * 10


async def test_byte_accounting_follows_overwrites_and_deletes() -> None:
    backend = MemoryBackend()
    await backend.set("k", b"x" * 10, ttl_s=None)
    await backend.set("k", b"x" * 20, ttl_s=None)
    assert backend.size_bytes == 21
    await backend.delete("k")
    assert backend.size_bytes == 0


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MemoryBackend(max_entries=0)
    with pytest.raises(ValueError):
        MemoryBackend(max_bytes=0)


async def test_entry_size_is_the_value_while_the_budget_counts_the_key_too() -> None:
    backend = MemoryBackend()
    await backend.set("key", b"x" * 10, ttl_s=None)
    info = await backend.info("key")
    assert info is not None and info.size_bytes == 10
    assert backend.size_bytes == 13


async def test_an_evicted_entry_takes_its_counts_with_it() -> None:
    backend = MemoryBackend(max_entries=1)
    await backend.set("a", b"v", ttl_s=None)
    await backend.get("a")
    await backend.set("b", b"v", ttl_s=None)
    await backend.set("a", b"v", ttl_s=None)
    info = await backend.info("a")
    assert info is not None and info.access_count == 0
