"""L2 (exact) hit latency in process: memory, SQLite and Redis, beside baselines and LiteLLM.

Per backend, one group of arms measured interleaved (bench/cache_common.py), every call a
hit on one of ``L2_KEYS`` keys holding the same ~2 KB value:

- the backend's ``get`` alone (for Redis: Helios's one-round-trip Lua script);
- ``ExactCache``: the key computed from the request (``key_for``) + ``lookup`` (decode
  included), what the engine pays;
- ``CacheManager.lookup``: the whole waterfall as the engine and the HTTP route call it
  (L1 report, L2 key and hit, metrics): ``runtime.cache`` of a ``Runtime`` opened on the
  backend's settings, as the engine and the server get it;
- Redis only: a bare redis-py ``GET`` of the same bytes (asyncio, and sync), the floor;
- LiteLLM ``local`` beside memory and ``redis`` beside Redis: ``Cache.async_get_cache``
  and a cache hit through ``litellm.acompletion``.
"""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from cache_common import (
    MODEL_SPEC,
    SYSTEM,
    TASK_TYPE,
    Arm,
    cached_reply,
    describe,
    l2_questions,
    measure,
    reply_text,
)
from cache_peers import LiteLLMCache, litellm_cache
from helios.config.settings import Settings
from helios.messages import Request
from helios.runtime import Runtime

L2_KEYS = 64


def l2_settings(backend: str, folder: Path, redis_url: str | None, prefix: str) -> Settings:
    cache: dict[str, Any] = {
        "backend": backend,
        "path": str(folder / f"l2-{backend}.sqlite3"),
        "max_entries": 10_000,
        "semantic": {"enabled": False},  # an L2 hit never reaches L3
    }
    if backend == "redis":
        cache.update(redis_url=redis_url, redis_prefix=prefix)
    return Settings.model_validate({"cache": cache, "ledger": {"enabled": False}})


def request_for(question: str) -> Request:
    return Request.of(question, model=MODEL_SPEC, system=SYSTEM, task_type=TASK_TYPE)


async def helios_group(runtime: Runtime, backend: str) -> list[Arm]:
    """The arms over ``runtime.cache`` (the runtime closes it)."""
    manager = runtime.cache
    assert manager is not None and manager.exact is not None and manager.semantic is None
    exact = manager.exact
    provider, model = runtime.registry.parse(MODEL_SPEC)
    requests = [request_for(question) for question in l2_questions(L2_KEYS)]
    keys = [exact.key_for(request, provider, model) for request in requests]
    reply = cached_reply(reply_text())
    for request, key in zip(requests, keys, strict=True):
        await manager.store(request, provider, model, reply, key=key, layers=("L2",))
    backend_store = exact.backend

    async def backend_get(i: int) -> bytes | None:
        return await backend_store.get(keys[i % L2_KEYS])

    async def exact_lookup(i: int) -> Any:
        request = requests[i % L2_KEYS]
        return await exact.lookup(exact.key_for(request, provider, model))

    async def manager_lookup(i: int) -> Any:
        return await manager.lookup(requests[i % L2_KEYS], provider, model)

    def key_only(i: int) -> str:
        return exact.key_for(requests[i % L2_KEYS], provider, model)

    def hit(result: Any) -> str:
        return "hit" if result is not None else "miss"

    arms = [
        Arm(f"{backend}: {type(backend_store).__name__}.get", backend_get, outcome=hit),
        Arm(f"{backend}: ExactCache key_for + lookup", exact_lookup, outcome=hit),
        Arm(
            f"{backend}: CacheManager.lookup",
            manager_lookup,
            outcome=lambda found: "hit" if found.layer == "L2" else "miss",
        ),
    ]
    if backend == "memory":
        arms.insert(1, Arm("request_key alone (key_for)", key_only))
    return arms


async def redis_floor(redis_url: str, prefix: str) -> tuple[list[Arm], Any, Any]:
    """Bare redis-py GETs of the same bytes: the async client Helios uses, and sync."""
    import redis
    import redis.asyncio

    value = cached_reply(reply_text()).to_bytes()
    raw_keys = [f"{prefix}:raw:{i}" for i in range(L2_KEYS)]
    sync_client = redis.Redis.from_url(redis_url)
    async_client = redis.asyncio.Redis.from_url(redis_url)
    for key in raw_keys:
        sync_client.set(key, value)

    async def async_get(i: int) -> Any:
        return await async_client.get(raw_keys[i % L2_KEYS])

    def sync_get(i: int) -> Any:
        return sync_client.get(raw_keys[i % L2_KEYS])

    def hit(result: Any) -> str:
        return "hit" if result == value else "miss"

    arms = [
        Arm("redis: redis-py GET (asyncio, hiredis)", async_get, outcome=hit),
        Arm("redis: redis-py GET (sync)", sync_get, outcome=hit),
    ]
    return arms, sync_client, async_client


async def litellm_group(
    kind: str, redis_url: str | None, prefix: str
) -> tuple[LiteLLMCache | None, list[Arm], str | None]:
    peer = litellm_cache(kind, redis_url, f"{prefix}:litellm")
    if isinstance(peer, str):
        return None, [], peer
    conversations = [peer.messages(SYSTEM, question) for question in l2_questions(L2_KEYS)]
    try:
        await peer.fill(conversations, reply_text())
    except Exception as exc:  # a peer that fails is reported, never fatal
        await peer.aclose()
        return None, [], f"LiteLLM {kind} failed: {type(exc).__name__}: {exc}"

    async def get(i: int) -> Any:
        return await peer.get(conversations[i % L2_KEYS])

    async def completion(i: int) -> Any:
        return await peer.completion(conversations[i % L2_KEYS])

    backend = "memory" if kind == "local" else "redis"
    arms = [
        Arm(
            f"{backend}: LiteLLM {kind} Cache.async_get_cache",
            get,
            outcome=lambda result: "hit" if result is not None else "miss",
        ),
        Arm(
            f"{backend}: LiteLLM {kind} acompletion (cache hit)",
            completion,
            outcome=lambda r: "hit" if r._hidden_params.get("cache_hit") else "miss",
        ),
    ]
    return peer, arms, None


async def measure_l2(
    folder: Path, redis_url: str | None, prefix: str, n: int, warmup: int, with_peers: bool
) -> dict[str, Any]:
    """Every backend group in turn; results keyed by arm name, plus unavailable peers."""
    results: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    backends = ["memory", "sqlite"] + (["redis"] if redis_url else [])
    if not redis_url:
        unavailable["redis"] = "no Redis URL (set HELIOS_TEST_REDIS_URL or --redis-url)"
    for backend in backends:
        group_prefix = f"{prefix}:{uuid.uuid4().hex[:8]}"
        settings = l2_settings(backend, folder, redis_url, group_prefix)
        async with AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(Runtime.open(settings))
            arms = await helios_group(runtime, backend)
            if backend == "redis" and redis_url:
                floor, sync_client, async_client = await redis_floor(redis_url, group_prefix)
                arms = floor + arms
                stack.callback(sync_client.close)
                stack.push_async_callback(async_client.aclose)
            if with_peers and backend in ("memory", "redis"):
                kind = "local" if backend == "memory" else "redis"
                peer, peer_arms, reason = await litellm_group(kind, redis_url, group_prefix)
                arms += peer_arms
                if peer is not None:
                    stack.push_async_callback(peer.aclose)
                if reason is not None:
                    unavailable[f"LiteLLM {kind}"] = reason
            series = await measure(arms, n, warmup)
        for name, samples in series.items():
            results[name] = describe(samples)
    return {"arms": results, "unavailable": unavailable, "keys": L2_KEYS}
