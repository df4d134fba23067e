"""Dashboard page times with a large ledger, beside a bare ``/health``.

A ledger is filled with N dialectic tasks (start, four cache lookups, four persona calls,
a gate verdict, a finish: 11 events each) spread evenly over the last 7 days, the way a
server answering ~N/7 tasks a day accumulates them. ``helios serve``'s app then answers
each page through the ASGI transport, in this process, so the time measured is the
server's own (routing, auth, queries, templates), with no network or client parsing:

- ``/health`` (the baseline: the cheapest route, same middleware);
- the overview over its default window (1 h) and over 24 h;
- the task list: its first page, a filtered and searched page, and a page deep in the list.

Every page is asked ``--requests`` times after one warm-up; reported: median and p99 per
page, per ledger size, per store (SQLite; PostgreSQL with ``--postgres URL``, in a schema
of its own dropped afterwards). Every run happens in a temporary ``HELIOS_DATA_DIR``.

Usage: .venv/bin/python bench/dashboard.py [--tasks 10000 100000] [--requests 30]
    [--postgres postgresql://postgres@127.0.0.1:5432/test] [--out PATH]
Writes bench/results/dashboard.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2

from common import machine, temporary_data_dir
from helios.config.settings import Settings
from helios.ledger.events import (
    CacheLookup,
    Event,
    GateVerdict,
    PersonaLLMRun,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.store import LedgerStore
from helios.percentiles import percentile
from helios.server import create_app

RESULTS = Path(__file__).parent / "results" / "dashboard.json"
WEEK_S = 7 * 86400.0
PERSONAS = ("thesis", "antithesis", "synthesis", "judge")
PAGES = {
    "health": "/health",
    "overview_1h": "/dashboard",
    "overview_24h": "/dashboard?window=24h",
    "tasks_page_1": "/dashboard/tasks",
    "tasks_filtered": "/dashboard/tasks?status=failed&range=24h&q=report",
    "tasks_page_100": "/dashboard/tasks?page=100",
}


def task_events(n: int, start: float) -> list[Event]:
    task_id = f"bench-{n:07d}"
    events: list[Event] = [
        TaskStarted(
            task_id=task_id,
            goal=f"{'review' if n % 3 else 'summarise'} the report #{n}",
            timestamp=start,
            flags={"async_thesis": n % 2 == 0},
        )
    ]
    for index, persona in enumerate(PERSONAS):
        hit = persona == "thesis" and n % 4 == 0
        events.append(
            CacheLookup(task_id=task_id, persona=persona, layer="L2", hit=hit, timestamp=start)
        )
        duration = 0.0 if hit else 0.5 + (n * 7 + index) % 13 / 10
        events.append(
            PersonaLLMRun(
                task_id=task_id,
                persona=persona,
                stage=persona,
                provider="anthropic",
                model="claude-sonnet-4-5",
                streaming=True,
                ttft_s=duration / 5,
                duration_s=duration,
                perceived_improvement=0.8,
                input_tokens=1200,
                output_tokens=300,
                cost_usd=0.0081,
                cost_saved_usd=0.0081 if hit else None,
                cache_layer="L2" if hit else None,
                timestamp=start + index + 1,
            )
        )
    accepted = n % 5 != 0
    events.append(
        GateVerdict(
            task_id=task_id,
            pass_number=1,
            passed=accepted,
            evidence_ok=True,
            judge_pass=accepted,
            judge_score=0.8,
            judge_valid=True,
            timestamp=start + 5,
        )
    )
    events.append(
        TaskFinished(
            task_id=task_id,
            success=n % 17 != 0,
            duration_s=5.5,
            accepted_pass=1 if accepted else None,
            passes=1,
            cost_usd=0.0324,
            timestamp=start + 5.5,
        )
    )
    return events


async def fill(store: LedgerStore, tasks: int, now: float) -> float:
    began = time.perf_counter()
    batch: list[Event] = []
    step = WEEK_S / tasks
    for n in range(tasks):
        batch += task_events(n, now - WEEK_S + n * step)
        if len(batch) >= 20_000:
            await store.append(batch)
            batch = []
    await store.append(batch)
    return time.perf_counter() - began


async def measure(store: LedgerStore, requests: int, settings: Settings) -> dict[str, Any]:
    app = create_app(settings, store=store, announce_exposure=False)
    timings: dict[str, list[float]] = {name: [] for name in PAGES}
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for path in PAGES.values():  # warm-up: connections, template compilation
                assert (await client.get(path)).status_code == 200, path
            for _ in range(requests):
                for name, path in PAGES.items():  # interleaved: drift hits every page alike
                    began = time.perf_counter()
                    answer = await client.get(path)
                    timings[name].append((time.perf_counter() - began) * 1000)
                    assert answer.status_code == 200, (path, answer.status_code)
    return {
        name: {
            "p50_ms": round(statistics.median(values), 2),
            "p99_ms": round(percentile(values, 0.99) or 0.0, 2),
            "requests": len(values),
        }
        for name, values in timings.items()
    }


def bench_settings(folder: Path) -> Settings:
    return Settings.model_validate(
        {
            "ledger": {"enabled": True, "path": str(folder / "unused.sqlite3")},
            "cache": {"backend": "memory", "semantic": {"enabled": False}},
            "keys": {"path": str(folder / "keys.sqlite3")},
        }
    )


async def run_sqlite(tasks: int, requests: int, folder: Path) -> dict[str, Any]:
    store = await SQLiteLedgerStore.open(folder / f"ledger-{tasks}.sqlite3", synchronous="NORMAL")
    try:
        filled = await fill(store, tasks, time.time())
        events = await store.count()
        pages = await measure(store, requests, bench_settings(folder))
    finally:
        await store.aclose()
    filled_s = round(filled, 1)
    return {"store": "sqlite", "tasks": tasks, "events": events, "fill_s": filled_s, **pages}


async def run_postgres(tasks: int, requests: int, url: str, folder: Path) -> dict[str, Any]:
    import psycopg
    from psycopg import sql

    from helios.ledger.postgres import PostgresLedgerStore

    schema = f"helios_bench_dashboard_{uuid.uuid4().hex[:8]}"
    store = PostgresLedgerStore(url, schema=schema)
    try:
        filled = await fill(store, tasks, time.time())
        events = await store.count()
        pages = await measure(store, requests, bench_settings(folder))
    finally:
        await store.aclose()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
            drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            await connection.execute(drop)
    return {
        "store": "postgres",
        "tasks": tasks,
        "events": events,
        "fill_s": round(filled, 1),
        **pages,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'store':<9}{'tasks':>8}  " + "  ".join(f"{name:>16}" for name in PAGES)]
    for row in rows:
        cells = "  ".join(
            f"{row[name]['p50_ms']:>7.1f}/{row[name]['p99_ms']:>7.1f}" + " " * 1 for name in PAGES
        )
        lines.append(f"{row['store']:<9}{row['tasks']:>8}  {cells}")
    return "\n".join(lines) + "\n(ms, p50/p99 server time per page)"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--postgres", default=None, help="also PostgreSQL at this URL")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with temporary_data_dir() as folder:
        for tasks in args.tasks:
            rows.append(await run_sqlite(tasks, args.requests, folder))
            print(table(rows[-1:]), flush=True)
            if args.postgres:
                rows.append(await run_postgres(tasks, args.requests, args.postgres, folder))
                print(table(rows[-1:]), flush=True)
    result = {
        "benchmark": "dashboard",
        "machine": machine(),
        "method": (
            "N tasks (11 events each) spread over 7 days; each page asked through the ASGI"
            " transport in-process (server time), interleaved, after one warm-up"
        ),
        "target": "overview and task list p50 <= 300 ms at 100k tasks",
        "pages": PAGES,
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
