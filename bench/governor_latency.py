"""Governor overhead per call: ``reserve`` + ``commit`` latency for each state backend.

One budget with two windows (a 5-hour session and a 7-day sliding window, tier-weighted
tokens), limits high enough never to refuse; N sequential calls each time a
``Governor.reserve`` followed by ``Governor.commit``. Side by side, each backend's floor:
the cheapest round trip it could possibly make (SQLite: an empty ``BEGIN IMMEDIATE`` /
``COMMIT`` in a worker thread; Redis: ``PING``), so the table shows what the governor adds
on top of the store itself (a reserve + commit is two round trips).

Every run happens in a temporary ``HELIOS_DATA_DIR`` (bench/common.py).

Usage: .venv/bin/python bench/governor_latency.py [--calls 3000] [--redis URL] [--out PATH]
Writes bench/results/governor.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from common import machine, temporary_data_dir
from helios.catalog import Catalog
from helios.config.governor import BudgetSettings, WindowSettings
from helios.errors import HeliosError
from helios.governance.governor import Governor
from helios.governance.state.base import GovernorState
from helios.governance.state.memory import MemoryState
from helios.governance.state.redis import RedisState
from helios.governance.state.sqlite import SQLiteState
from helios.messages import Request, Usage
from helios.percentiles import percentile
from helios.sqlite_db import SQLiteDatabase, transaction

RESULTS = Path(__file__).parent / "results" / "governor.json"
WARMUP = 200
BUDGET = BudgetSettings(
    account="bench",
    windows=[
        WindowSettings(name="5h", kind="session", limit=1e15),
        WindowSettings(name="week", kind="sliding", length_s=7 * 86400, limit=1e15),
    ],
)


def summary(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {"p50_ms": percentile(ms, 0.5), "p99_ms": percentile(ms, 0.99), "n": len(ms)}


async def timed(operation: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    for _ in range(WARMUP):
        await operation()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        await operation()
        samples.append(time.perf_counter() - start)
    return samples


async def governor_latency(state: GovernorState, calls: int) -> dict[str, float]:
    # a microbenchmark of one component: the Governor over each state backend, built here
    governor = Governor(state, [BUDGET], Catalog.load())
    request = Request.of("Summarise the design notes in three bullet points.")
    usage = Usage(input_tokens=20, output_tokens=120)

    async def one() -> None:
        reservation = await governor.reserve(request, "anthropic", "claude-sonnet-4-6")
        await governor.commit(reservation, usage)

    try:
        return summary(await timed(one, calls))
    finally:
        await governor.close()


async def sqlite_floor(path: Path, calls: int) -> dict[str, float]:
    db = SQLiteDatabase(path, what="bench", error=HeliosError, setup=lambda c: None)

    def empty(connection: Any) -> None:
        with transaction(connection):
            pass

    try:
        return summary(await timed(lambda: db.run(empty), calls))
    finally:
        await db.close()


async def redis_floor(url: str, calls: int) -> dict[str, float]:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        return summary(await timed(client.ping, calls))
    finally:
        await client.aclose()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    results["memory"] = {"governor": await governor_latency(MemoryState(), args.calls)}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "governor.sqlite3"
        results["sqlite"] = {
            "governor": await governor_latency(SQLiteState(path), args.calls),
            "floor (empty write transaction)": await sqlite_floor(
                Path(folder) / "floor.sqlite3", args.calls
            ),
        }
    prefix = f"helios-bench:{uuid.uuid4().hex}"
    try:
        results["redis"] = {
            "governor": await governor_latency(RedisState(args.redis, prefix=prefix), args.calls),
            "floor (PING)": await redis_floor(args.redis, args.calls),
        }
    finally:
        from redis.asyncio import Redis

        client = Redis.from_url(args.redis)
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args()
    with temporary_data_dir():
        results = asyncio.run(main_async(args))
    print(f"{'backend':8} {'measure':34} {'p50 ms':>8} {'p99 ms':>8}")
    for backend, measures in results.items():
        for name, numbers in measures.items():
            label = "reserve + commit" if name == "governor" else name
            print(f"{backend:8} {label:34} {numbers['p50_ms']:8.3f} {numbers['p99_ms']:8.3f}")
    payload = {"machine": machine(), "calls": args.calls, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
