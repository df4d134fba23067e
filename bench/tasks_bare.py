"""The baseline of bench/tasks.py's start arm: DBOS alone, in this process.

A workflow whose first step reads the clock, enqueued on a queue with Helios's default poll
interval, on the same kind of system database; latency = that reading - the time just
before the enqueue (ms). What Helios adds on top: the HTTP submission, a worker process that
is not the submitter, and the steps before the task's model call.
"""

from __future__ import annotations

import asyncio
import time

from dbos import DBOS

from helios.config.tasks import TasksSettings

POLL_S = TasksSettings().poll_interval_s


async def _clock() -> float:
    return time.time()


@DBOS.workflow(name="bench_bare")
async def bare() -> float:
    return await DBOS.run_step_async({"name": "clock"}, _clock)


def bare_dbos_start_latency(database: str, schema: str, n: int) -> list[float]:
    return asyncio.run(_measure(database, schema, n))


async def _measure(database: str, schema: str, n: int) -> list[float]:
    url = database.replace("tasks.sqlite", "bare.sqlite")
    config = {
        "name": "helios-bench-bare",
        "system_database_url": url,
        "application_version": "bare-1",
        "executor_id": "bare",
        "log_level": "WARNING",
    }
    if not url.startswith("sqlite"):
        config["dbos_system_schema"] = schema + "_bare"
    DBOS(config=config)  # type: ignore[arg-type]
    DBOS.launch()
    try:
        await DBOS.register_queue_async("bare", polling_interval_sec=POLL_S)
        latencies = []
        for _ in range(n + 5):
            enqueued = time.time()
            handle = await DBOS.enqueue_workflow_async("bare", bare)
            started = await handle.get_result()
            latencies.append((started - enqueued) * 1000)
            await asyncio.sleep(0.01)
        return latencies[5:]
    finally:
        DBOS.destroy()
