"""Redis goes away in the middle of a run and comes back: calls are served throughout, the
cache reports itself degraded meanwhile, and it recovers without a restart.

A TCP proxy stands between the cache and the real Redis server, so the test can cut every
connection (as a restart or a network failure would) and restore the path later.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from helios.cache.exact import ExactCache
from helios.cache.manager import CacheManager
from helios.catalog import Catalog
from helios.config.breaker import BreakerSettings
from helios.config.settings import Settings
from helios.engine import Engine
from helios.messages import Request
from helios.providers.function import FunctionProvider
from helios.providers.registry import ProviderRegistry
from tests.cache.conftest import redis_namespace, redis_url
from tests.cache.tcp_proxy import Proxy


async def test_redis_down_mid_run_fails_open_and_recovers() -> None:
    from helios.cache.backends.redis import RedisBackend

    target = urlsplit(redis_url())
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    url = f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}"
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    provider = FunctionProvider(
        lambda r: f"answer to {r.messages[-1].content}", name="f", model="m"
    )
    registry.add(provider)
    breaker = BreakerSettings(cooldown_s=0.2)
    backend = RedisBackend(url, prefix=redis_namespace(), socket_timeout_s=0.5, breaker=breaker)
    cache = CacheManager(catalog, exact=ExactCache(backend))
    engine = Engine(registry, catalog, cache=cache)
    request = Request.of("what is up?", model="f:m")
    try:
        assert (await engine.complete(request)).cache_layer is None
        assert (await engine.complete(request)).cache_layer == "L2"
        assert (await cache.health()).status == "ok"

        await proxy.stop()
        during = await engine.complete(request)
        assert during.text == "answer to what is up?" and during.cache_layer is None
        assert len(provider.calls) == 2  # served by the provider, not failed
        fresh = await engine.complete(Request.of("and now?", model="f:m"))
        assert fresh.text == "answer to and now?"
        health = await cache.health()
        assert health.status == "degraded" and health.layers["L2"].status == "degraded"
        assert "127.0.0.1" in health.layers["L2"].detail
        assert cache.snapshot()["layers"]["L2"]["errors"] >= 2

        await proxy.start()
        await asyncio.sleep(breaker.cooldown_s)  # the circuit opened: one probe after this
        after = await engine.complete(request)
        assert after.cache_layer == "L2"  # the entry survived in Redis; no restart needed
        assert (await cache.health()).status == "ok"
        assert len(provider.calls) == 3
    finally:
        await backend.delete_prefix("")
        await engine.aclose()
        await cache.aclose()  # the engine closes its providers; the cache is ours
        await proxy.stop()
