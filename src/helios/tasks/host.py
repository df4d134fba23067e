"""DBOS in this process: ``helios serve`` (API, and a worker unless told not to) and
``helios worker`` open a :class:`TaskHost` around their runtime.

DBOS is one per process (a class-level singleton), launched with Helios's settings: the
system database (SQLite in the data dir, or PostgreSQL to scale out), a fixed application
version (DBOS recovers only workflows of its own version; Helios's task workflow keeps its
shape across releases, so a restart on a newer Helios still finishes older tasks), and this
process's executor id. A worker listens to its queue; an API-only process listens to none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig

from helios.errors import TaskError
from helios.ledger.events import TaskRecovered
from helios.runtime import Runtime
from helios.tasks import health  # noqa: F401  (registers the health check's workflow)
from helios.tasks.fleet import Fleet, Takeover, keep_alive
from helios.tasks.workflow import WORKFLOW_NAME, current_hosts, install_host, remove_host

logger = logging.getLogger("helios.tasks")
APP_NAME = "helios"
TASKS_VERSION = "helios-tasks-1"
"""The task workflow's shape: change it only with a change of its steps."""


class TaskHost:
    """DBOS launched for this process, with the runtime its task workflows run on."""

    def __init__(
        self, runtime: Runtime, executor_id: str, queue: str, fleet: Fleet, *, worker: bool
    ) -> None:
        self._runtime = runtime
        self._executor_id = executor_id
        self.queue = queue
        self.fleet = fleet
        self.worker = worker
        """Whether this process runs the queue's tasks (or only takes them)."""

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    @property
    def executor_id(self) -> str:
        return self._executor_id

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        runtime: Runtime,
        *,
        worker: bool = True,
        role: str = "serve",
        executor_id: str | None = None,
        queue: str | None = None,
        concurrency: int | None = None,
    ) -> AsyncIterator[TaskHost]:
        """Launch DBOS for ``runtime``; ``role`` names the process (``serve``, ``worker``)
        in its default executor id; ``worker``: run the tasks of ``queue`` (default
        ``tasks.queue``) here, at most ``concurrency`` at once (default
        ``tasks.worker_concurrency``: the queue's setting, shared by its workers)."""
        if current_hosts():
            raise TaskError(
                "this process already runs a task host (DBOS is one per process): run the"
                " second server in a process of its own, or with tasks.enabled: false"
            )
        settings = runtime.settings.tasks
        url = settings.resolved_database_url()
        name = (
            executor_id
            or settings.executor_id
            or f"{socket.gethostname()}-{role if worker else 'api'}"
        )
        queue_name = queue or settings.queue
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        config: DBOSConfig = {
            "name": APP_NAME,
            "system_database_url": url,
            "application_version": TASKS_VERSION,
            "executor_id": name,
            "notification_listener_polling_interval_sec": settings.stream_poll_s,
            "log_level": "WARNING",
        }
        if settings.on_postgres:
            config["dbos_system_schema"] = settings.schema_name
        else:
            config["system_database_engine"] = sqlite_engine(url)
        fleet = Fleet(
            url,
            schema=settings.schema_name if settings.on_postgres else None,
            executor_id=name,
            queue=queue_name,
            interval_s=settings.heartbeat_interval_s,
            timeout_s=settings.heartbeat_timeout_s,
        )
        host = cls(runtime, name, queue_name, fleet, worker=worker)
        try:
            await fleet.join()  # TaskError: the executor id is live elsewhere
        except TaskError:
            fleet.close()
            raise
        except Exception as exc:
            fleet.close()
            raise TaskError(f"tasks.system_database_url: cannot open {_safe(url)}: {exc}") from exc
        install_host(host)
        try:
            _launch(config, [queue_name] if worker else [])
            await DBOS.register_queue_async(
                queue_name,
                worker_concurrency=concurrency or settings.worker_concurrency,
                global_concurrency=settings.global_concurrency,
                polling_interval_sec=settings.poll_interval_s,
                on_conflict="always_update",
            )
            beating = asyncio.create_task(
                keep_alive(fleet, host._resume if worker else None, host._took_over),
                name="helios-task-heartbeat",
            )
            logger.info(
                "tasks: executor %s on %s (%s)",
                name,
                _safe(url),
                f"worker of '{queue_name}'" if worker else "API only",
            )
            try:
                yield host
            finally:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
                # Stopping on purpose: the others need not wait out the timeout to take
                # over what this process leaves pending (a database that failed is why
                # some stop: then they will, and that is fine).
                with contextlib.suppress(Exception):
                    await fleet.leave()
        finally:
            remove_host(host)
            DBOS.destroy(workflow_completion_timeout_sec=0)
            # DBOS made its thread pool this loop's default executor and has just shut it
            # down: the runtime still needs one to close its stores.
            asyncio.get_running_loop().set_default_executor(
                ThreadPoolExecutor(thread_name_prefix="helios")
            )
            fleet.close()

    async def _resume(self, dead_executor_id: str) -> list[str]:
        pending = await DBOS.list_workflows_async(
            status="PENDING",
            executor_id=dead_executor_id,
            name=WORKFLOW_NAME,
            load_input=False,
            load_output=False,
        )
        resumed = []
        for status in pending:
            await DBOS.resume_workflow_async(status.workflow_id, queue_name=status.queue_name)
            resumed.append(status.workflow_id)
        return resumed

    def _took_over(self, takeover: Takeover) -> None:
        logger.warning(
            "tasks: executor %s silent for %.1f s: %d task(s) handed back to the queue by %s",
            takeover.dead_executor_id,
            takeover.silent_for_s,
            len(takeover.task_ids),
            self.executor_id,
        )
        for task_id in takeover.task_ids:
            self.runtime.sink.emit(
                TaskRecovered(
                    task_id=task_id,
                    executor_id=self.executor_id,
                    attempt=0,
                    previous_executor_id=takeover.dead_executor_id,
                )
            )


def sqlite_engine(url: str) -> sa.Engine:
    """DBOS's SQLite engine, in WAL mode with ``synchronous=NORMAL``, as Helios's other
    SQLite stores are: DBOS's own keeps SQLite's rollback journal, whose several fsyncs per
    commit made each step cost milliseconds. A process killed loses nothing; a power cut
    may lose the last commits (PostgreSQL, for a fleet, keeps its own durability). DBOS's
    settings per connection are kept: IMMEDIATE transactions, a long busy timeout."""
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        connection.isolation_level = "IMMEDIATE"
        for pragma in (
            "busy_timeout=30000",
            "foreign_keys=ON",
            "journal_mode=WAL",
            "synchronous=NORMAL",
        ):
            connection.execute(f"PRAGMA {pragma}")

    return engine


def _launch(config: DBOSConfig, queues: list[str]) -> None:
    try:
        DBOS(config=config)
        DBOS.listen_queues(queues)
        DBOS.launch()
    except Exception as exc:
        DBOS.destroy()
        raise TaskError(
            f"tasks: cannot start DBOS on {_safe(config.get('system_database_url') or '')}: {exc}"
        ) from exc


def _safe(url: str) -> str:
    """A database URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, place = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}@{place}"
    return url
