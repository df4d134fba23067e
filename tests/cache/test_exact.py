"""The L2 layer: hits and misses per persona, TTL, chunk replay, failing open, invalidation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from helios.cache.backends.base import CacheBackend, EntryInfo
from helios.cache.backends.memory import MemoryBackend
from helios.cache.exact import CachedReply, ExactCache
from helios.errors import CacheBackendError
from helios.messages import CallContext, Chunk, Completion, Request, ToolCallDelta, Usage
from helios.providers.base import StreamAssembler
from tests.cache.conftest import FakeClock, MakeBackend

USAGE = Usage(input_tokens=12, output_tokens=5, cache_read_tokens=3)


def reply(
    text: str = "Paris is the capital.", chunks: tuple[str, ...] | None = None
) -> CachedReply:
    completion = Completion(text=text, usage=USAGE, model="claude-x", provider="anthropic")
    return CachedReply.from_completion(completion, chunks, created_at=1_000_000.0)


def key_of(cache: ExactCache, prompt: str = "Capital of France?", **fields: Any) -> str:
    return cache.key_for(Request.of(prompt, **fields), "anthropic", "claude-x")


@pytest.fixture
def cache(clock: FakeClock) -> ExactCache:
    return ExactCache(MemoryBackend(clock=clock), ttl_s=60)


async def test_hit_and_miss_counted_per_persona(make_backend: MakeBackend) -> None:
    cache = ExactCache(make_backend())
    thesis = key_of(cache, "Argue for the capital of France.")
    assert await cache.lookup(thesis, persona="thesis") is None
    assert await cache.store(thesis, reply(), persona="thesis") is True
    assert await cache.lookup(thesis, persona="thesis") == reply()
    assert await cache.lookup(key_of(cache, "Argue against it."), persona="antithesis") is None
    assert await cache.lookup(key_of(cache)) is None
    snapshot = cache.snapshot()
    assert snapshot["by_persona"]["thesis"] == {
        "hits": 1,
        "misses": 1,
        "errors": 0,
        "stores": 1,
        "hit_rate": 0.5,
    }
    assert snapshot["by_persona"]["antithesis"]["misses"] == 1
    assert snapshot["by_persona"]["-"]["misses"] == 1
    assert snapshot["total"]["hits"] == 1 and snapshot["total"]["misses"] == 3
    assert snapshot["backend"] == cache.backend.name
    assert cache.stats.total.hit_rate == 0.25
    await cache.aclose()


async def test_entries_expire_after_ttl(make_backend: MakeBackend, clock: FakeClock) -> None:
    cache = ExactCache(make_backend(), ttl_s=60)
    key = key_of(cache)
    await cache.store(key, reply())
    clock.advance(59)
    assert await cache.lookup(key) is not None
    clock.advance(1)
    assert await cache.lookup(key) is None


async def test_chunk_boundaries_survive_a_round_trip(make_backend: MakeBackend) -> None:
    cache = ExactCache(make_backend())
    chunks = ("Par", "is is", " the", "", " capital.")
    stored = reply(chunks=chunks)
    key = key_of(cache)
    await cache.store(key, stored)
    found = await cache.lookup(key)
    assert found is not None
    assert found.chunks == ("Par", "is is", " the", " capital.")
    assert found.replay() == (
        Chunk(text="Par"),
        Chunk(text="is is"),
        Chunk(text=" the"),
        Chunk(text=" capital."),
        Chunk(usage=USAGE, finish_reason="stop"),
    )
    assert found.to_completion().text == "Paris is the capital."
    assert found.to_completion().usage == USAGE


def test_a_non_streamed_reply_replays_as_one_chunk() -> None:
    assert reply().chunks == ("Paris is the capital.",)
    assert reply(text="").chunks == ()


def test_chunks_must_spell_the_text() -> None:
    with pytest.raises(ValueError, match="join back"):
        reply(chunks=("Lyon",))


def test_bytes_round_trip_keeps_unicode() -> None:
    original = reply(text="東京 😀", chunks=("東", "京 ", "😀"))
    assert CachedReply.from_bytes(original.to_bytes()) == original


async def test_failed_replies_are_not_stored(cache: ExactCache) -> None:
    completion = Completion(
        text="half", usage=USAGE, model="m", provider="p", finish_reason="cancelled"
    )
    cancelled = CachedReply.from_completion(completion, created_at=0.0)
    assert await cache.store(key_of(cache), cancelled) is False
    assert await cache.backend.count() == 0


class BrokenBackend(CacheBackend):
    """Every operation fails the way a backend reports a failure."""

    name = "broken"

    async def get(self, key: str) -> bytes | None:
        raise CacheBackendError("disk on fire")

    async def set(self, key: str, value: bytes, *, ttl_s: float | None) -> None:
        raise CacheBackendError("disk on fire")

    async def delete(self, key: str) -> bool:
        raise CacheBackendError("disk on fire")

    async def scan(self, prefix: str = "") -> AsyncIterator[str]:
        raise CacheBackendError("disk on fire")
        yield prefix  # pragma: no cover - makes this an async generator

    async def count(self, prefix: str = "") -> int:
        raise CacheBackendError("disk on fire")

    async def info(self, key: str) -> EntryInfo | None:
        raise CacheBackendError("disk on fire")


async def test_a_failing_backend_is_a_miss_and_an_error_never_a_raise() -> None:
    cache = ExactCache(BrokenBackend())
    key = key_of(cache)
    assert await cache.lookup(key, persona="thesis") is None
    assert await cache.store(key, reply(), persona="thesis") is False
    counts = cache.stats.of("thesis")
    assert (counts.hits, counts.misses, counts.errors, counts.stores) == (0, 1, 2, 0)


async def test_invalidate_reports_a_failing_backend() -> None:
    cache = ExactCache(BrokenBackend())
    with pytest.raises(CacheBackendError):
        await cache.invalidate(tenant="acme")


async def test_entries_reports_a_failing_backend() -> None:
    cache = ExactCache(BrokenBackend())
    with pytest.raises(CacheBackendError):
        await cache.entries(tenant="acme")
    with pytest.raises(CacheBackendError):
        await cache.entries(task_type="qa")


@pytest.mark.parametrize(
    "garbage",
    [b"not json", b"\xff\xfe\x00", b"{}", b'{"text": "a", "chunks": ["b"]}', b"[]"],
)
async def test_a_corrupt_value_is_a_miss_and_is_deleted(
    make_backend: MakeBackend, garbage: bytes
) -> None:
    cache = ExactCache(make_backend())
    key = key_of(cache)
    await cache.backend.set(key, garbage, ttl_s=None)
    assert await cache.lookup(key) is None
    assert await cache.backend.get(key) is None
    assert cache.stats.total.errors == 1 and cache.stats.total.misses == 1


async def test_invalidate_by_key_tenant_task_type_and_all(make_backend: MakeBackend) -> None:
    cache = ExactCache(make_backend())
    keys = {
        (tenant, task): key_of(cache, context=CallContext(tenant=tenant), task_type=task)
        for tenant in ("acme", "globex", "acme:eu")
        for task in ("qa", "summary")
    }
    for key in keys.values():
        await cache.store(key, reply())
    await cache.backend.set("evidence:abc", b"not L2", ttl_s=None)

    assert await cache.invalidate(key=keys["globex", "qa"]) == 1
    assert await cache.invalidate(key=keys["globex", "qa"]) == 0
    assert await cache.invalidate(tenant="acme") == 2  # "acme:eu" is another tenant
    assert await cache.lookup(keys["acme:eu", "qa"]) is not None
    assert await cache.invalidate(task_type="summary") == 2  # globex and acme:eu
    assert await cache.lookup(keys["acme:eu", "qa"]) is not None
    assert await cache.invalidate(tenant="acme:eu", task_type="qa") == 1
    await cache.store(keys["acme", "qa"], reply())
    assert await cache.invalidate() == 1
    assert await cache.backend.count() == 1  # other namespaces on the backend stay
    with pytest.raises(ValueError):
        await cache.invalidate(key="x", tenant="acme")


async def test_ttl_none_keeps_entries(clock: FakeClock) -> None:
    cache = ExactCache(MemoryBackend(clock=clock), ttl_s=None)
    key = key_of(cache)
    await cache.store(key, reply())
    clock.advance(10**9)
    assert await cache.lookup(key) is not None


async def test_entries_by_tenant_task_type_and_all(make_backend: MakeBackend) -> None:
    cache = ExactCache(make_backend())
    keys = {
        (tenant, task): key_of(cache, context=CallContext(tenant=tenant), task_type=task)
        for tenant in ("acme", "globex", "acme:eu")
        for task in ("qa", "summary")
    }
    for key in keys.values():
        await cache.store(key, reply())
    await cache.backend.set("evidence:abc", b"not L2", ttl_s=None)
    for hit in [("globex", "summary"), ("acme", "qa"), ("globex", "summary")]:
        assert await cache.lookup(keys[hit]) is not None

    def named(entries: list[EntryInfo]) -> list[tuple[str, str]]:
        by_key = {key: name for name, key in keys.items()}
        return [by_key[info.key] for info in entries]

    everything = await cache.entries()
    counts = {
        name: info.access_count for name, info in zip(named(everything), everything, strict=True)
    }
    assert counts == {name: 0 for name in keys} | {("globex", "summary"): 2, ("acme", "qa"): 1}
    # hits first, then the rest; the test clock stands still, so ties go by key
    assert set(named(everything[:2])) == {("globex", "summary"), ("acme", "qa")}
    assert [info.key for info in everything[:2]] == sorted(info.key for info in everything[:2])
    assert [info.key for info in everything[2:]] == sorted(info.key for info in everything[2:])
    assert sorted(named(await cache.entries(tenant="acme"))) == [
        ("acme", "qa"),
        ("acme", "summary"),
    ]
    assert sorted(named(await cache.entries(task_type="summary"))) == [
        ("acme", "summary"),
        ("acme:eu", "summary"),
        ("globex", "summary"),
    ]
    assert named(await cache.entries(task_type="summary", limit=1)) == [("globex", "summary")]
    assert named(await cache.entries(tenant="acme:eu", task_type="qa")) == [("acme:eu", "qa")]
    assert len(await cache.entries(limit=3)) == 3
    assert cache.stats.total.hits == 3  # listing is not a lookup
    assert [info.access_count for info in await cache.entries()] == [
        info.access_count for info in everything
    ]
    with pytest.raises(ValueError):
        await cache.entries(task_type="qa", limit=-1)


async def test_entries_most_recently_hit_first(cache: ExactCache, clock: FakeClock) -> None:
    first, second, unread = (key_of(cache, prompt) for prompt in ("one?", "two?", "three?"))
    for key in (first, second, unread):
        await cache.store(key, reply())
    clock.advance(1)
    await cache.lookup(second)
    clock.advance(1)
    await cache.lookup(first)
    entries = await cache.entries()
    assert [info.key for info in entries] == [first, second, unread]
    assert [info.last_access for info in entries] == [clock.now, clock.now - 1, None]
    assert entries[0].size_bytes == len(reply().to_bytes())
    assert entries[0].expires_at == clock.now - 2 + 60


def test_a_stream_with_tool_calls_replays_them_in_place() -> None:
    stream = [
        Chunk(text="Let me look. "),
        Chunk(tool_calls=(ToolCallDelta(index=0, id="c1", name="lookup", arguments='{"q":'),)),
        Chunk(tool_calls=(ToolCallDelta(index=0, arguments=' "x"}'),)),
        Chunk(tool_calls=(ToolCallDelta(index=1, id="c2", name="clock"),)),
        Chunk(usage=USAGE, finish_reason="tool_calls"),
    ]
    assembler = StreamAssembler("anthropic", "claude-x")
    for chunk in stream:
        assembler.add(chunk)
    completion = assembler.completion()
    assert [(c.id, c.name, c.arguments) for c in completion.tool_calls] == [
        ("c1", "lookup", '{"q": "x"}'),
        ("c2", "clock", ""),
    ]
    cached = CachedReply.from_completion(
        completion, assembler.parts, assembler.tool_deltas, created_at=1.0
    )
    assert list(CachedReply.from_bytes(cached.to_bytes()).replay()) == stream
    assert cached.to_completion().tool_calls == completion.tool_calls
    whole = CachedReply.from_completion(completion, created_at=1.0)  # not streamed
    assert whole.to_completion().tool_calls == completion.tool_calls


def test_entries_stored_before_tool_calls_existed_still_decode() -> None:
    old = b'{"text":"hi","chunks":["hi"],"usage":{},"model":"m","provider":"p","created_at":1.0}'
    assert CachedReply.from_bytes(old).replay()[0] == Chunk(text="hi")
