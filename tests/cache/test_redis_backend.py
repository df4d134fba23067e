"""Redis-only behaviour: server-side TTLs, literal prefixes, batches, failing open.

The shared contract runs in ``test_backend_contract.py``; these need a real server and skip
unless ``HELIOS_TEST_REDIS_URL`` is set (see ``conftest.redis_url``).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from helios.cache.backends.base import EntryInfo
from helios.cache.backends.redis import INFO_COUNT, RedisBackend, glob_escape, redis_address
from helios.cache.exact import CachedReply, ExactCache
from helios.cache.factory import l2_backend
from helios.config.cache import CacheSettings
from helios.errors import CacheBackendError, ConfigError
from helios.messages import Usage
from tests.cache.conftest import FakeClock, redis_namespace, redis_url
from tests.cache.tcp_proxy import Proxy, free_port


@pytest.fixture
async def backend() -> AsyncIterator[RedisBackend]:
    made = RedisBackend(redis_url(), prefix=redis_namespace())
    yield made
    await made.delete_prefix("")
    await made.aclose()


async def keys(backend: RedisBackend, prefix: str = "") -> list[str]:
    return sorted([key async for key in backend.scan(prefix)])


def a_reply() -> CachedReply:
    return CachedReply(
        text="hello",
        chunks=("hel", "lo"),
        usage=Usage(input_tokens=3, output_tokens=2),
        model="m",
        provider="p",
        created_at=0.0,
    )


async def test_real_ttl_expires_on_the_server(backend: RedisBackend) -> None:
    await backend.set("brief", b"x", ttl_s=0.3)
    await backend.set("kept", b"y", ttl_s=None)
    assert await backend.get("brief") == b"x"
    await asyncio.sleep(0.45)
    assert await backend.get("brief") is None
    assert await keys(backend) == ["kept"]
    assert await backend.count() == 1
    assert await backend.delete("brief") is False
    assert await backend.delete_prefix("") == 1


async def test_overwrite_replaces_the_ttl(backend: RedisBackend) -> None:
    await backend.set("a", b"short-lived", ttl_s=10)
    raw = backend._client
    full = f"{backend.prefix}:a"
    assert 9_000 < await raw.pttl(full) <= 10_000
    await backend.set("a", b"forever", ttl_s=None)
    assert await raw.pttl(full) == -1  # no expiry any more
    await backend.set("a", b"tiny", ttl_s=0.0001)  # rounds up to 1 ms, never to "no TTL"
    await asyncio.sleep(0.01)
    assert await backend.get("a") is None


async def test_an_entry_is_one_hash_with_its_ttl(backend: RedisBackend) -> None:
    raw = backend._client
    await backend.set("a", b"value", ttl_s=60)
    assert await backend.get("a") == b"value"
    assert await backend.get("missing") is None  # a miss writes nothing
    full = f"{backend.prefix}:a"
    assert [key async for key in raw.scan_iter(match=f"{backend.prefix}:*")] == [full.encode()]
    fields = await raw.hgetall(full)
    assert (fields[b"v"], fields[b"n"]) == (b"value", b"1")
    assert float(fields[b"c"]) <= float(fields[b"a"]) <= backend.clock()
    assert 59_000 < await raw.pttl(full) <= 60_000  # counting kept the TTL
    await backend.set("a", b"again", ttl_s=None)
    assert sorted(await raw.hkeys(full)) == [b"c", b"n", b"v"]
    assert await raw.pttl(full) == -1


async def test_a_value_from_before_the_counters_is_a_miss_and_dropped(
    backend: RedisBackend,
) -> None:
    full = f"{backend.prefix}:old"
    await backend._client.set(full, b"plain string value")
    assert await backend.info("old") is None
    assert await backend.entries() == []
    assert await backend.get("old") is None
    assert await backend._client.exists(full) == 0
    await backend.set("old", b"new", ttl_s=None)
    assert await backend.get("old") == b"new"


async def test_entry_times_use_the_injected_clock_and_expiry_the_server() -> None:
    clock = FakeClock()
    backend = RedisBackend(redis_url(), prefix=redis_namespace(), clock=clock)
    try:
        await backend.set("brief", b"x", ttl_s=0.3)
        for key in ["a", "b", "c"]:
            await backend.set(key, b"v", ttl_s=None)
        for key in ["b", "brief", "a"]:
            clock.advance(1)
            await backend.get(key)
        entries = await backend.entries()
        assert [(info.key, info.last_access) for info in entries] == [
            ("a", clock.now),
            ("brief", clock.now - 1),
            ("b", clock.now - 2),
            ("c", None),
        ]
        brief = entries[1]
        assert brief.created_at == clock.now - 3
        assert brief.expires_at is not None and 0 < brief.expires_at - clock.now <= 0.3
        await asyncio.sleep(0.45)
        assert await backend.info("brief") is None
        assert [info.key for info in await backend.entries(limit=2)] == ["a", "b"]
    finally:
        await backend.delete_prefix("")
        await backend.aclose()


async def test_entries_over_many_scan_pages(backend: RedisBackend) -> None:
    for n in range(1_234):
        await backend.set(f"bulk:{n:04}", b"v", ttl_s=None)
    await backend.get("bulk:1000")
    entries = await backend.entries("bulk:", limit=4)
    assert [info.key for info in entries] == ["bulk:1000", "bulk:0000", "bulk:0001", "bulk:0002"]
    assert len(await backend.entries("bulk:", limit=5_000)) == 1_234


async def test_entries_reads_metadata_in_bounded_round_trips(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each round trip runs at most INFO_COUNT scripts, so a listing of a big SCAN page
    never holds one pipeline long enough to pass the deadline that lookups share."""
    for n in range(250):
        await backend.set(f"page:{n:03}", b"v", ttl_s=None)
    sizes: list[int] = []
    read = backend._infos

    async def counted(full_keys: list[bytes]) -> list[EntryInfo]:
        sizes.append(len(full_keys))
        return await read(full_keys)

    monkeypatch.setattr(backend, "_infos", counted)
    assert len(await backend.entries("page:", limit=1_000)) == 250
    assert sum(sizes) == 250
    assert max(sizes) <= INFO_COUNT and len(sizes) >= 3


async def test_scripts_survive_a_server_that_forgot_them(backend: RedisBackend) -> None:
    """A restarted or failed-over server has an empty script cache."""
    await backend.set("k", b"v", ttl_s=None)
    await backend._client.script_flush()
    assert await backend.get("k") == b"v"
    await backend._client.script_flush()
    assert [(info.key, info.access_count) for info in await backend.entries()] == [("k", 1)]
    await backend._client.script_flush()
    info = await backend.info("k")
    assert info is not None and info.access_count == 1


async def test_glob_characters_in_prefixes_are_literal(backend: RedisBackend) -> None:
    names = ["a*b", "a?c", "a[1]", "a\\d", "ab", "a1]"]
    for name in names:
        await backend.set(name, name.encode(), ttl_s=None)
    assert await keys(backend, "a*") == ["a*b"]
    assert await keys(backend, "a?") == ["a?c"]
    assert await keys(backend, "a[") == ["a[1]"]
    assert await keys(backend, "a\\") == ["a\\d"]
    assert await backend.count("a") == len(names)
    assert glob_escape("x*?[]\\y") == "x\\*\\?\\[\\]\\\\y"


async def test_namespace_with_glob_characters_stays_isolated() -> None:
    url = redis_url()
    stem = redis_namespace()
    starry = RedisBackend(url, prefix=f"{stem}:*")
    plain = RedisBackend(url, prefix=f"{stem}:x")
    try:
        await starry.set("k", b"1", ttl_s=None)
        await plain.set("k", b"2", ttl_s=None)
        assert await keys(starry) == ["k"]  # not ``x:k`` picked up by the ``*``
        assert await starry.delete_prefix("") == 1
        assert await plain.get("k") == b"2"
    finally:
        await plain.delete_prefix("")
        await starry.aclose()
        await plain.aclose()


async def test_delete_prefix_in_batches(backend: RedisBackend) -> None:
    pipe = backend._client.pipeline(transaction=False)
    for n in range(1_234):
        pipe.set(f"{backend.prefix}:bulk:{n}", b"v")
    await pipe.execute()
    await backend.set("other", b"v", ttl_s=None)
    assert await backend.count("bulk:") == 1_234
    assert await backend.delete_prefix("bulk:") == 1_234
    assert await keys(backend) == ["other"]


async def test_errors_name_host_and_port_never_the_password() -> None:
    port = free_port()
    dead = RedisBackend(f"redis://user:s3cret@127.0.0.1:{port}/0", socket_timeout_s=0.5)
    try:
        for operation in (
            dead.get("k"),
            dead.set("k", b"v", ttl_s=1),
            dead.delete("k"),
            dead.count(),
            dead.delete_prefix(""),
            dead.info("k"),
            dead.entries(),
        ):
            with pytest.raises(CacheBackendError) as caught:
                await operation
            assert f"127.0.0.1:{port}" in str(caught.value)
            assert "s3cret" not in str(caught.value)
        with pytest.raises(CacheBackendError):
            _ = [key async for key in dead.scan()]
    finally:
        await dead.aclose()
    assert redis_address("redis://:pw@example.com/3") == "example.com:6379"
    assert redis_address("unix:///run/redis.sock?db=1") == "/run/redis.sock"


async def test_exact_cache_fails_open_and_recovers() -> None:
    target = urlsplit(redis_url())
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    user_info, at, _ = target.netloc.rpartition("@")
    url = target._replace(netloc=f"{user_info}{at}127.0.0.1:{proxy.port}")
    backend = RedisBackend(url.geturl(), prefix=redis_namespace(), socket_timeout_s=0.5)
    cache = ExactCache(backend, ttl_s=60)
    try:
        assert await cache.store("k", a_reply()) is True
        assert await cache.lookup("k") == a_reply()

        await proxy.stop()  # the server goes away mid-run
        assert await cache.lookup("k") is None
        assert await cache.store("k2", a_reply()) is False
        counts = cache.stats.total
        assert (counts.hits, counts.misses, counts.errors) == (1, 1, 2)

        await proxy.start()  # and comes back: the same backend reconnects on its own
        assert await cache.lookup("k") == a_reply()
        assert cache.stats.total.hits == 2
    finally:
        with contextlib.suppress(CacheBackendError):
            await backend.delete_prefix("")
        await backend.aclose()
        await proxy.stop()


async def test_settings_select_redis() -> None:
    with pytest.raises(ConfigError, match=r"cache\.redis_url"):
        l2_backend(CacheSettings(backend="redis"))
    backend = l2_backend(
        CacheSettings(backend="redis", redis_url="redis://127.0.0.1:1/0", redis_prefix="p")
    )
    assert isinstance(backend, RedisBackend)
    assert backend.prefix == "p"
    assert backend.address == "127.0.0.1:1"
    await backend.aclose()


def test_default_install_never_imports_redis() -> None:
    code = (
        "import sys, helios.engine; from helios.cache.factory import l2_backend;"
        "from helios.config.cache import CacheSettings;"
        "l2_backend(CacheSettings(backend='memory'));"
        "assert not any(m == 'redis' or m.startswith('redis.') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
