"""Ledger write throughput, and what a durable ledger adds to a pipeline task.

Part 1: sustained throughput. N realistic ``persona_llm_run`` events go through a
``LedgerWriter`` (batched writes off the event loop) into SQLite and PostgreSQL; the clock
stops when ``flush()`` says they are all durable. Reported: events/s per store.

Part 2: added latency per task. The dialectic pipeline runs with instant in-process
personas (``FunctionProvider``) so that only Helios's work is timed, each arm assembled by
``Runtime.open(settings, providers=[...])`` (cache off): once with the ledger off (events
kept in memory) and once with the SQLite ledger on, ``runtime.flush()`` before the task is
considered done (the rule: a result is returned only after its events are durable).
Tasks alternate between the arms; reported: p50/p99 per arm and of the paired difference.

Every run happens in a temporary ``HELIOS_DATA_DIR`` (bench/common.py).

Usage: .venv/bin/python bench/ledger.py [--events 100000] [--tasks 300] [--postgres URL]
    [--out PATH]
Writes bench/results/ledger.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import machine, temporary_data_dir
from helios.config.settings import Settings
from helios.ledger.events import PersonaLLMRun
from helios.ledger.postgres import PostgresLedgerStore
from helios.ledger.sink import MemorySink
from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.store import LedgerStore
from helios.ledger.writer import LedgerWriter
from helios.percentiles import percentile
from helios.pipeline.dialectic import DialecticPipeline
from helios.pipeline.evidence import Evidence, Passage
from helios.providers.function import FunctionProvider
from helios.runtime import Runtime

RESULTS = Path(__file__).parent / "results" / "ledger.json"
VERDICT = '{"pass": true, "score": 0.9, "reasons": ["ok"]}'


def persona_event(task_id: str, i: int) -> PersonaLLMRun:
    return PersonaLLMRun(
        task_id=task_id,
        persona=("thesis", "antithesis", "synthesis", "judge")[i % 4],
        stage="thesis",
        provider="anthropic",
        model="claude-sonnet-5-5",
        streaming=True,
        ttft_s=0.92,
        duration_s=3.88,
        perceived_improvement=0.763,
        input_tokens=1200,
        output_tokens=340,
        cache_read_tokens=1024,
        cost_usd=0.0061,
        cache_layer=None,
    )


async def throughput(store: LedgerStore, n: int) -> dict[str, float]:
    # a microbenchmark of one component: a LedgerWriter appending to a store, built here
    events = [persona_event(uuid.uuid4().hex, i) for i in range(n)]
    writer = LedgerWriter(store)
    started = time.perf_counter()
    for event in events:
        writer.emit(event)
    await writer.flush()
    elapsed = time.perf_counter() - started
    await writer.aclose()
    assert await store.count() >= n
    return {"events": n, "seconds": elapsed, "events_per_s": n / elapsed}


class InstantGatherer:
    async def gather(self, goal: str, documents: Any) -> Evidence:
        passage = Passage("E1", "notes.md", 1, 3, "Monoliths are cheaper to run.", 0.9)
        return Evidence((passage,), 1, 1, False, 1, 0.0)


def instant_persona() -> FunctionProvider:
    def reply(request: Any) -> str:
        return VERDICT if request.context.persona == "judge" else "An answer citing [E1]."

    return FunctionProvider(reply, name="fake", model="model")


def task_settings(ledger: Path | None) -> Settings:
    """Every persona on the instant double, the cache off; the SQLite ledger at ``ledger``
    (default batching), or none."""
    return Settings.model_validate(
        {
            "default_model": "fake:model",
            "cache": {"enabled": False},
            "ledger": {"enabled": ledger is not None, "path": str(ledger) if ledger else None},
        }
    )


def pipeline_of(runtime: Runtime) -> DialecticPipeline:
    return DialecticPipeline(runtime.engine, runtime.settings, InstantGatherer(), sink=runtime.sink)


async def added_latency(ledger: Path, tasks: int) -> dict[str, Any]:
    async with (
        Runtime.open(task_settings(ledger), providers=[instant_persona()]) as on,
        Runtime.open(task_settings(None), sink=MemorySink(), providers=[instant_persona()]) as off,
    ):
        assert on.store is not None and off.store is None
        with_ledger, without = pipeline_of(on), pipeline_of(off)
        samples: dict[str, list[float]] = {"off": [], "on": []}

        async def ledger_on() -> None:
            await with_ledger.run("Should we adopt microservices?")
            await on.flush()  # the task counts as done only once its events are durable

        async def ledger_off() -> None:
            await without.run("Should we adopt microservices?")

        for i in range(tasks + 20):
            order = (("off", ledger_off), ("on", ledger_on))
            for arm, call in order if i % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                await call()
                if i >= 20:
                    samples[arm].append(time.perf_counter() - started)
        events = await on.store.count()
    added = [on - off for on, off in zip(samples["on"], samples["off"], strict=True)]
    return {
        "tasks": tasks,
        "events_recorded": events,
        "events_per_task": events / (tasks + 20),
        "off_p50_ms": statistics.median(samples["off"]) * 1000,
        "on_p50_ms": statistics.median(samples["on"]) * 1000,
        "off_p99_ms": percentile(samples["off"], 0.99) * 1000,
        "on_p99_ms": percentile(samples["on"], 0.99) * 1000,
        "added_p50_ms": statistics.median(added) * 1000,
        "added_p99_ms": percentile(added, 0.99) * 1000,
    }


async def drop_schema(url: str, schema: str) -> None:
    """The benchmark writes into a throwaway schema; leave the database as it was."""
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        sqlite = SQLiteLedgerStore(Path(folder) / "bench.sqlite3")
        results["sqlite_throughput"] = await throughput(sqlite, args.events)
        await sqlite.aclose()
        results["added_latency_sqlite"] = await added_latency(
            Path(folder) / "tasks.sqlite3", args.tasks
        )
    if args.postgres:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        postgres = PostgresLedgerStore(args.postgres, schema=schema)
        try:
            results["postgres_throughput"] = await throughput(postgres, args.events)
        finally:
            await postgres.aclose()
            await drop_schema(args.postgres, schema)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument(
        "--postgres", default=os.environ.get("HELIOS_TEST_POSTGRES_URL"), help="PostgreSQL URL"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args()
    with temporary_data_dir():
        results = asyncio.run(main_async(args))
    results["machine"] = machine()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for store in ("sqlite", "postgres"):
        row = results.get(f"{store}_throughput")
        if row:
            print(f"{store:9} throughput: {row['events_per_s']:,.0f} events/s ({row['events']:,})")
    lat = results["added_latency_sqlite"]
    print(
        f"per task, SQLite ledger: off p50 {lat['off_p50_ms']:.3f} ms, on p50 "
        f"{lat['on_p50_ms']:.3f} ms, added p50 {lat['added_p50_ms']:.3f} ms "
        f"(p99 {lat['added_p99_ms']:.3f}); {lat['events_per_task']:.1f} events per task"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
