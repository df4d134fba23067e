"""Redis-only behaviour: server-side TTLs, literal prefixes, batches, failing open.

The shared contract runs in ``test_backend_contract.py``; these need a real server and skip
unless ``HELIOS_TEST_REDIS_URL`` is set (see ``conftest.redis_url``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from helios.cache.backends.redis import RedisBackend, glob_escape, redis_address
from helios.cache.exact import CachedReply, ExactCache
from helios.engine import response_cache
from helios.errors import CacheBackendError, ConfigError
from helios.messages import Usage
from helios.settings import CacheSettings
from tests.cache.conftest import redis_namespace, redis_url


@pytest.fixture
async def backend() -> AsyncIterator[RedisBackend]:
    made = RedisBackend(redis_url(), prefix=redis_namespace())
    yield made
    await made.delete_prefix("")
    await made.aclose()


async def keys(backend: RedisBackend, prefix: str = "") -> list[str]:
    return sorted([key async for key in backend.scan(prefix)])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


class Proxy:
    """A TCP forwarder to the test server that can be taken down and brought back."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


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
        response_cache(CacheSettings(backend="redis"))
    cache = response_cache(
        CacheSettings(backend="redis", redis_url="redis://127.0.0.1:1/0", redis_prefix="p")
    )
    assert cache is not None
    assert isinstance(cache.backend, RedisBackend)
    assert cache.backend.prefix == "p"
    assert cache.backend.address == "127.0.0.1:1"
    await cache.backend.aclose()


def test_default_install_never_imports_redis() -> None:
    code = (
        "import sys, helios.engine; from helios.engine import response_cache;"
        "from helios.settings import CacheSettings;"
        "response_cache(CacheSettings(backend='memory'));"
        "assert not any(m == 'redis' or m.startswith('redis.') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
