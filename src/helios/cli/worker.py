"""``helios worker``: run durable tasks from a queue, next to any number of other workers.

It opens the runtime from the settings (the same ``tasks.system_database_url`` as the
servers that take the tasks) and DBOS as a worker of ``--queue``; it beats every
``tasks.heartbeat_interval_s`` and takes over the tasks of workers that stopped beating.
SIGTERM or Ctrl-C stop it; what it was running is resumed by another worker (at once: it
says it left) or by itself when it starts again with the same ``--executor-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer

from helios.cli.context import cli_context, console_err
from helios.config.settings import Settings
from helios.runtime import Runtime


def worker(
    ctx: typer.Context,
    queue: Annotated[
        str | None, typer.Option(help="The queue to run (default tasks.queue).")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Tasks one worker runs at once (the queue's setting, shared)."),
    ] = None,
    executor_id: Annotated[
        str | None,
        typer.Option(help="This worker's name in the fleet; a restart with it resumes its tasks."),
    ] = None,
) -> None:
    """Run durable tasks from a queue until stopped (SIGTERM, Ctrl-C)."""
    settings = cli_context(ctx).settings()
    asyncio.run(_work(settings, queue, concurrency, executor_id))


async def _work(
    settings: Settings, queue: str | None, concurrency: int | None, executor_id: str | None
) -> None:
    from helios.tasks.host import TaskHost

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with (
        Runtime.open(settings) as runtime,
        TaskHost.open(
            runtime,
            worker=True,
            role="worker",
            executor_id=executor_id,
            queue=queue,
            concurrency=concurrency,
        ) as host,
    ):
        console_err.print(
            f"worker {host.executor_id}: running queue '{host.queue}'"
            f" on {settings.tasks.resolved_database_url().split('@')[-1]}",
            markup=False,
        )
        await stop.wait()
        console_err.print(f"worker {host.executor_id}: stopping", markup=False)
    with contextlib.suppress(NotImplementedError):
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
