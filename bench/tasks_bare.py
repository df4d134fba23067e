"""The baseline of bench/tasks.py's start arm: DBOS alone, in this process.

A workflow of one empty step, enqueued on a queue with Helios's default poll interval, on
the same kind of system database; latency = DBOS's ``dequeued_at`` - ``created_at`` (ms), as
for Helios's tasks. What Helios adds on top is its own start: a process that is not this
one, and the task's first steps.
"""

from __future__ import annotations

import asyncio
import time

from dbos import DBOS

from helios.config.tasks import TasksSettings

POLL_S = TasksSettings().poll_interval_s


async def _nothing() -> None:
    return None


@DBOS.workflow(name="bench_bare")
async def bare() -> None:
    await DBOS.run_step_async({"name": "nothing"}, _nothing)


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
            handle = await DBOS.enqueue_workflow_async("bare", bare)
            await handle.get_result()
            status = await handle.get_status()
            assert status.dequeued_at is not None and status.created_at is not None
            latencies.append(float(status.dequeued_at - status.created_at))
            time.sleep(0.01)
        return latencies[5:]
    finally:
        DBOS.destroy()
