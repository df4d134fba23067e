"""A cache store that refuses connections or hangs mid-load never fails a call nor holds it:
every call is served (a miss), the circuit opens after the configured failures and then no
operation touches the network, health says so, and the cache recovers without a restart.

A TCP proxy stands between each layer and its real server (Redis for L2, PostgreSQL with
pgvector for L3): ``stop()`` refuses connections, ``hang()`` accepts them and forwards
nothing. Its counters tell whether a client touched the network at all.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy
import pytest
from numpy.typing import NDArray

from helios.cache.exact import CachedReply, ExactCache
from helios.cache.manager import CacheManager
from helios.cache.semantic import SemanticCache
from helios.catalog import Catalog
from helios.config.breaker import BreakerSettings
from helios.config.cache import SemanticCacheSettings
from helios.config.settings import Settings
from helios.embeddings.base import Embedder
from helios.engine import Engine
from helios.messages import Request, Usage
from helios.providers.function import FunctionProvider
from helios.providers.registry import ProviderRegistry
from tests.cache import vector_conftest
from tests.cache.conftest import redis_namespace, redis_url
from tests.cache.tcp_proxy import FAULTS, NO_HANG_S, Proxy, postgres_proxy, redis_proxy
from tests.cache.vector_conftest import drop_table, fresh_table

pgvector_url = vector_conftest.pgvector_url

# a short cool-down keeps the test quick; long enough that the calls made while the
# circuit is open all fall inside it
BREAKER = BreakerSettings(deadline_s=0.05, failures=3, cooldown_s=2.0)
SONNET = ("anthropic", "claude-sonnet-5-5")


def touches(proxy: Proxy) -> tuple[int, int]:
    return proxy.accepted, proxy.client_reads


# -- L2: Redis --------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", FAULTS)
async def test_redis_l2_fault_mid_load_is_a_miss_then_an_open_circuit(fault: str) -> None:
    from helios.cache.backends.redis import RedisBackend

    proxy, url = await redis_proxy(redis_url())
    namespace = redis_namespace()
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    provider = FunctionProvider(
        lambda r: f"answer to {r.messages[-1].content}", name="f", model="m"
    )
    registry.add(provider)
    backend = RedisBackend(url, prefix=namespace, breaker=BREAKER)
    cache = CacheManager(catalog, exact=ExactCache(backend))
    engine = Engine(registry, catalog, cache=cache)
    seen = Request.of("what is up?", model="f:m")
    try:
        await engine.complete(seen)
        assert (await engine.complete(seen)).cache_layer == "L2"

        await proxy.fail(fault)
        async with asyncio.timeout(NO_HANG_S):
            for n in range(12):
                served = await engine.complete(Request.of(f"question {n}?", model="f:m"))
                assert served.text == f"answer to question {n}?"
                assert served.cache_layer is None
        breaker = backend.breaker
        assert breaker.state == "open" and breaker.opened == 1
        if fault == "hung":
            assert breaker.timeouts >= 1
        health = await cache.health()
        assert health.layers["L2"].status == "degraded"
        assert health.layers["L2"].breaker == "open"
        assert "circuit open" in health.layers["L2"].detail
        assert cache.snapshot()["breakers"]["L2"]["state"] == "open"

        # the path comes back, but the circuit is open: nothing goes out until the probe
        await proxy.restore(fault)
        before = touches(proxy)
        calls = len(provider.calls)
        for _ in range(5):
            assert (await engine.complete(seen)).cache_layer is None
        assert touches(proxy) == before
        assert len(provider.calls) == calls + 5  # served by the provider meanwhile
        assert breaker.rejected >= 10  # five lookups and five stores, refused at once

        await asyncio.sleep(breaker.retry_after_s())
        assert breaker.state == "half-open"
        assert (await engine.complete(seen)).cache_layer == "L2"  # no restart needed
        assert breaker.state == "closed"
        assert touches(proxy) != before
        health = await cache.health()
        assert health.status == "ok" and health.layers["L2"].breaker == "closed"
    finally:
        await proxy.restore(fault) if proxy.hung else None
        cleaner = RedisBackend(redis_url(), prefix=namespace)
        await cleaner.delete_prefix("")
        await cleaner.aclose()
        await engine.aclose()
        await cache.aclose()
        await proxy.stop()


# -- L3: pgvector -----------------------------------------------------------------------------
class BagOfWords(Embedder):
    """Deterministic and instant: each word adds 1 to a hashed dimension, then unit length."""

    name = "bag-of-words"
    dim = 64

    async def embed(self, texts: Sequence[str]) -> NDArray[numpy.float32]:
        vectors = numpy.zeros((len(texts), self.dim), dtype=numpy.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                vectors[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = numpy.maximum(numpy.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        unit: NDArray[numpy.float32] = (vectors / norms).astype(numpy.float32)
        return unit


def cached(text: str) -> CachedReply:
    return CachedReply(
        text=text,
        chunks=(text,),
        usage=Usage(input_tokens=10, output_tokens=5),
        model=SONNET[1],
        provider=SONNET[0],
        created_at=0.0,
    )


@pytest.fixture
async def proxied_pgvector(pgvector_url: str) -> AsyncIterator[tuple[Proxy, str, str]]:
    proxy, url = await postgres_proxy(pgvector_url)
    table = fresh_table()
    yield proxy, url, table
    proxy.resume()
    await proxy.stop()
    await drop_table(pgvector_url, table)


@pytest.mark.parametrize("fault", FAULTS)
async def test_pgvector_l3_fault_mid_load_is_a_miss_then_an_open_circuit(
    fault: str, proxied_pgvector: tuple[Proxy, str, str]
) -> None:
    from helios.cache.backends.pgvector import PgvectorIndex

    proxy, url, table = proxied_pgvector
    embedder = BagOfWords()
    index = PgvectorIndex(url, embedder.dim, table=table, breaker=BREAKER)
    semantic = SemanticCache(index, embedder, SemanticCacheSettings())
    cache = CacheManager(Catalog.load(), semantic=semantic)
    known = Request.of("how do I rotate my keys", model="sonnet")
    try:
        assert await cache.store(known, *SONNET, cached("like this")) == ("L3",)
        assert (await cache.lookup(known, *SONNET)).layer == "L3"

        await proxy.fail(fault)
        async with asyncio.timeout(NO_HANG_S):
            for n in range(12):
                asked = Request.of(f"question number {n}", model="sonnet")
                found = await cache.lookup(asked, *SONNET)
                assert found.reply is None and found.l3.error is not None
                assert await cache.store(asked, *SONNET, cached(f"reply {n}")) == ()
        breaker = index.breaker
        assert breaker.state == "open" and breaker.opened == 1
        health = await cache.health()
        assert health.layers["L3"].status == "degraded"
        assert health.layers["L3"].breaker == "open"
        assert cache.snapshot()["breakers"]["L3"]["state"] == "open"

        await proxy.restore(fault)
        before = touches(proxy)
        for _ in range(5):
            assert (await cache.lookup(known, *SONNET)).reply is None
        assert touches(proxy) == before

        await asyncio.sleep(breaker.retry_after_s())
        async with asyncio.timeout(NO_HANG_S):
            # the probe may land on a pooled connection the fault broke: the pool drops
            # it and the next operation gets a fresh one
            while (found := await cache.lookup(known, *SONNET)).layer != "L3":
                assert found.reply is None
                await asyncio.sleep(breaker.retry_after_s())
        assert breaker.state == "closed"
        assert (await cache.health()).layers["L3"].status == "ok"
    finally:
        proxy.resume()
        await cache.aclose()


def test_breaker_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="deadline_s"):
        BreakerSettings(deadline_s=0)
    with pytest.raises(ValueError, match="failures"):
        BreakerSettings(failures=0)
    settings: Any = Settings.model_validate({"cache": {"redis_breaker": {"deadline_s": 0.2}}})
    assert settings.cache.redis_breaker.deadline_s == 0.2
    assert settings.cache.redis_breaker.failures == 3
