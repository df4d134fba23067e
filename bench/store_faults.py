"""What a Redis L2 store that hangs adds to each cache lookup through the cache manager.

A TCP proxy (the one the fault tests use, tests/cache/tcp_proxy.py) stands between the
cache and a real Redis; ``hang()`` makes it accept connections and forward nothing, as a
black-holed network path or a stalled server would. Each arm times
``CacheManager.lookup`` of the same request (an L2 hit while the path flows), one call
after another:

- **healthy**: the path flows; the lookup is an L2 hit.
- **hung, circuit closed**: every lookup waits for the deadline (50 ms, the default) and
  misses; a breaker that never opens (``failures`` 10^6) keeps every sample in this state.
- **hung, circuit open**: the default breaker after it opened: lookups miss at once.
- **hung, default settings, as it happens**: the first lookups after the path hangs, with
  the default breaker: the few that pay the deadline, then the open circuit.
- **hung, without the breaker** (a 60 s deadline, as before: redis-py's 2 s socket
  timeout and one retry decide): a handful of samples, for the "before" column.

The target (issue): at most 50 ms added per call while a store hangs.

Usage: .venv/bin/python bench/store_faults.py [--redis URL] [--out PATH]   (~30 s)
Writes bench/results/store_faults.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from common import machine
from helios.cache.backends.redis import RedisBackend
from helios.cache.exact import CachedReply, ExactCache
from helios.cache.manager import CacheManager
from helios.catalog import Catalog
from helios.config.breaker import BreakerSettings
from helios.messages import Request, Usage
from helios.percentiles import percentile

sys.path.insert(0, str(Path(__file__).parents[1]))  # the repository root, for tests/
from tests.cache.tcp_proxy import Proxy, redis_proxy

RESULTS = Path(__file__).parent / "results" / "store_faults.json"
DEFAULT = BreakerSettings(deadline_s=0.05)
TARGET_MS = 50.0
PROVIDER, MODEL = "anthropic", "claude-sonnet-5-5"


def describe(seconds: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": statistics.median(ms),
        "p99_ms": percentile(ms, 0.99),
        "mean_ms": statistics.fmean(ms),
        "max_ms": max(ms),
    }


async def lookups(manager: CacheManager, request: Request, n: int) -> tuple[list[float], int]:
    """``n`` lookups one after another: their times and how many hit."""
    times, hits = [], 0
    for _ in range(n):
        started = time.perf_counter()
        found = await manager.lookup(request, PROVIDER, MODEL, use_l1=False)
        times.append(time.perf_counter() - started)
        hits += found.hit
    return times, hits


async def arm(
    proxy: Proxy, url: str, prefix: str, breaker: BreakerSettings, *, hang: bool, n: int
) -> dict[str, Any]:
    """A fresh backend (fresh connections and circuit) through the proxy; ``n`` lookups."""
    backend = RedisBackend(url, prefix=prefix, breaker=breaker)
    manager = CacheManager(Catalog.load(), exact=ExactCache(backend))
    request = Request.of("what is a circuit breaker?", model="sonnet")
    try:
        await lookups(manager, request, 20)  # connections open, scripts loaded
        if hang:
            proxy.hang()
        times, hits = await lookups(manager, request, n)
        return {
            **describe(times),
            "hits": hits,
            "breaker": backend.breaker.snapshot(),
            "first_ms": [round(t * 1000, 3) for t in times[:6]],
        }
    finally:
        proxy.resume()
        await manager.aclose()


async def measure(redis_url: str) -> dict[str, Any]:
    proxy, url = await redis_proxy(redis_url)
    prefix = f"helios:bench:faults:{uuid.uuid4().hex}"
    seed = RedisBackend(redis_url, prefix=prefix)
    reply = CachedReply(
        text="It stops calling a store that keeps failing.",
        chunks=("It stops calling", " a store that keeps failing."),
        usage=Usage(input_tokens=30, output_tokens=12),
        model=MODEL,
        provider=PROVIDER,
        created_at=time.time(),
    )
    request = Request.of("what is a circuit breaker?", model="sonnet")
    seeded = ExactCache(seed)
    await seeded.store(seeded.key_for(request, PROVIDER, MODEL), reply)
    never_opens = BreakerSettings(deadline_s=DEFAULT.deadline_s, failures=10**6)
    opens_once = BreakerSettings(deadline_s=DEFAULT.deadline_s, cooldown_s=600)
    no_breaker = BreakerSettings(deadline_s=60.0, failures=10**6)
    try:
        arms = {
            "healthy": await arm(proxy, url, prefix, DEFAULT, hang=False, n=2000),
            "hung_circuit_closed": await arm(proxy, url, prefix, never_opens, hang=True, n=100),
            "hung_default_as_it_happens": await arm(
                proxy, url, prefix, opens_once, hang=True, n=2000
            ),
            "hung_without_breaker": await arm(proxy, url, prefix, no_breaker, hang=True, n=3),
        }
        # the open circuit alone: the samples after it opened
        open_backend = RedisBackend(url, prefix=prefix, breaker=opens_once)
        manager = CacheManager(Catalog.load(), exact=ExactCache(open_backend))
        await lookups(manager, request, 20)
        proxy.hang()
        await lookups(manager, request, DEFAULT.failures)
        assert open_backend.breaker.state == "open"
        times, hits = await lookups(manager, request, 5000)
        arms["hung_circuit_open"] = {**describe(times), "hits": hits}
        proxy.resume()
        await manager.aclose()
    finally:
        await seed.delete_prefix("")
        await seed.aclose()
        await proxy.stop()
    healthy = arms["healthy"]["p50_ms"]
    hung = arms["hung_default_as_it_happens"]
    return {
        "machine": machine(),
        "redis": redis_url.rsplit("@", 1)[-1],
        "settings": DEFAULT.model_dump(),
        "arms": arms,
        "target": {
            "added_ms_per_call_while_hung": TARGET_MS,
            "added_p50_ms": hung["p50_ms"] - healthy,
            "added_p99_ms": hung["p99_ms"] - healthy,
            "met": hung["p99_ms"] - healthy <= TARGET_MS,
        },
    }


def print_table(results: dict[str, Any]) -> None:
    print(f"{'arm':32} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'hits':>5}")
    for name, row in results["arms"].items():
        print(
            f"{name:32} {row['n']:5d} {row['p50_ms']:9.3f} {row['p99_ms']:9.3f}"
            f" {row['max_ms']:9.3f} {row['hits']:5d}"
        )
    target = results["target"]
    print(
        f"added while hung (default settings): p50 {target['added_p50_ms']:.3f} ms,"
        f" p99 {target['added_p99_ms']:.3f} ms; target <= {TARGET_MS:g} ms:"
        f" {'met' if target['met'] else 'missed'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--redis",
        default=os.environ.get("HELIOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        help="a Redis to measure against (keys under a throwaway prefix, deleted after)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = asyncio.run(measure(args.redis))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_table(results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
