"""Worker liveness: what open-source DBOS lacks, and all that Helios adds to it.

DBOS recovers a worker's unfinished tasks when a process with the same executor id starts
again; a worker that never comes back leaves them pending for ever. So every worker beats
into a table beside DBOS's own (``helios_workers``, same database); every worker also looks
for executors silent beyond ``tasks.heartbeat_timeout_s`` (or stopped on purpose), claims
each with one conditional UPDATE, so that one worker alone takes a dead one over, and hands
its pending tasks back to the queue with DBOS's public ``resume_workflow``. The tasks then
run on whichever worker dequeues them, their finished steps not repeated.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from helios.errors import TaskError

logger = logging.getLogger("helios.tasks")
TABLE = "helios_workers"


@dataclass(frozen=True, slots=True)
class Takeover:
    dead_executor_id: str
    task_ids: list[str]
    silent_for_s: float


def engine_url(url: str) -> str:
    """SQLAlchemy's URL for a system database URL: psycopg 3, not the psycopg2 default."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Fleet:
    """This process's heartbeat, and the takeover of executors that stopped beating."""

    def __init__(
        self,
        database_url: str,
        *,
        schema: str | None,
        executor_id: str,
        queue: str,
        interval_s: float,
        timeout_s: float,
    ) -> None:
        self.executor_id = executor_id
        self.queue = queue
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._engine = sa.create_engine(engine_url(database_url), pool_pre_ping=True)
        metadata = sa.MetaData(schema=schema)
        self.table = sa.Table(
            TABLE,
            metadata,
            sa.Column("executor_id", sa.Text, primary_key=True),
            sa.Column("host", sa.Text, nullable=False),
            sa.Column("pid", sa.Integer, nullable=False),
            sa.Column("queue", sa.Text, nullable=False),
            sa.Column("started_at", sa.Float, nullable=False),
            sa.Column("beat_at", sa.Float, nullable=False),
            sa.Column("stopped_at", sa.Float, nullable=True),
            sa.Column("taken_over_by", sa.Text, nullable=True),
            sa.Column("taken_over_at", sa.Float, nullable=True),
        )
        self._metadata = metadata

    # -- this process ---------------------------------------------------------------------
    async def join(self) -> None:
        """Create the table if needed and beat for the first time; refuse an executor id
        that a live process of another host or pid is using."""
        await asyncio.to_thread(self._join)

    def _join(self) -> None:
        if self._metadata.schema is not None:  # DBOS creates it too, but only at launch
            with self._engine.begin() as db:
                db.execute(sa.schema.CreateSchema(self._metadata.schema, if_not_exists=True))
        self._metadata.create_all(self._engine, checkfirst=True)
        host, pid, now = socket.gethostname(), os.getpid(), time.time()
        t = self.table
        with self._engine.begin() as db:
            row = db.execute(sa.select(t).where(t.c.executor_id == self.executor_id)).first()
            if row is not None:
                live = row.stopped_at is None and now - row.beat_at < self.timeout_s
                if row.host == host:  # on this machine the process itself can be asked
                    live = live and row.pid != pid and _running(row.pid)
                if live:
                    raise TaskError(
                        f"executor id '{self.executor_id}' is in use by pid {row.pid} on"
                        f" {row.host} (it beat {now - row.beat_at:.1f} s ago): give this"
                        " worker another one (--executor-id or tasks.executor_id)"
                    )
                db.execute(
                    t.update()
                    .where(t.c.executor_id == self.executor_id)
                    .values(
                        host=host,
                        pid=pid,
                        queue=self.queue,
                        started_at=now,
                        beat_at=now,
                        stopped_at=None,
                        taken_over_by=None,
                        taken_over_at=None,
                    )
                )
            else:
                db.execute(
                    t.insert().values(
                        executor_id=self.executor_id,
                        host=host,
                        pid=pid,
                        queue=self.queue,
                        started_at=now,
                        beat_at=now,
                    )
                )

    async def beat(self) -> None:
        await asyncio.to_thread(self._set, beat_at=time.time())

    async def leave(self) -> None:
        """A worker that stops on purpose says so: its tasks need not wait for the timeout."""
        await asyncio.to_thread(self._set, stopped_at=time.time())

    def _set(self, **values: float) -> None:
        t = self.table
        with self._engine.begin() as db:
            db.execute(t.update().where(t.c.executor_id == self.executor_id).values(**values))

    # -- the others ------------------------------------------------------------------------
    async def claim_dead(self) -> list[tuple[str, float]]:
        """Executors silent beyond the timeout (or stopped) that this process now owns the
        takeover of, each claimed by one conditional UPDATE (so by one process only)."""
        return await asyncio.to_thread(self._claim_dead)

    def _claim_dead(self) -> list[tuple[str, float]]:
        t, now = self.table, time.time()
        cutoff = now - self.timeout_s
        gone = sa.or_(t.c.beat_at < cutoff, t.c.stopped_at.is_not(None))
        unclaimed = sa.and_(t.c.taken_over_by.is_(None), t.c.executor_id != self.executor_id)
        claimed = []
        with self._engine.begin() as db:
            rows = db.execute(sa.select(t.c.executor_id, t.c.beat_at).where(gone, unclaimed))
            candidates = [(row.executor_id, now - row.beat_at) for row in rows]
        for executor_id, silent_for in candidates:
            with self._engine.begin() as db:
                won = db.execute(
                    t.update()
                    .where(t.c.executor_id == executor_id, gone, t.c.taken_over_by.is_(None))
                    .values(taken_over_by=self.executor_id, taken_over_at=now)
                ).rowcount
            if won == 1:
                claimed.append((executor_id, silent_for))
        return claimed

    async def unclaim(self, executor_id: str) -> None:
        """A takeover that failed midway: let the next beat (here or elsewhere) try again."""

        def undo() -> None:
            t = self.table
            with self._engine.begin() as db:
                db.execute(
                    t.update()
                    .where(t.c.executor_id == executor_id, t.c.taken_over_by == self.executor_id)
                    .values(taken_over_by=None, taken_over_at=None)
                )

        await asyncio.to_thread(undo)

    async def workers(self) -> list[dict[str, Any]]:
        """Every worker the table knows, for ``/health``."""

        def read() -> list[dict[str, Any]]:
            with self._engine.begin() as db:
                rows = db.execute(sa.select(self.table).order_by(self.table.c.executor_id))
                return [dict(row._mapping) for row in rows]

        return await asyncio.to_thread(read)

    def close(self) -> None:
        self._engine.dispose()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


ResumeTasks = Callable[[str], Awaitable[list[str]]]
"""Hands a dead executor's pending tasks back to the queue; returns their ids."""


async def keep_alive(
    fleet: Fleet, resume: ResumeTasks | None, on_takeover: Callable[[Takeover], None]
) -> None:
    """Beat every ``interval_s``; with ``resume`` (a process that runs tasks), take dead
    executors over. Runs until cancelled; a database that fails is logged and tried again."""
    while True:
        try:
            await fleet.beat()
            if resume is not None:
                for executor_id, silent_for in await fleet.claim_dead():
                    try:
                        task_ids = await resume(executor_id)
                    except BaseException:
                        await fleet.unclaim(executor_id)
                        raise
                    on_takeover(Takeover(executor_id, task_ids, silent_for))
        except Exception as exc:  # the supervisor must outlive a failing database: log, retry
            logger.warning("task fleet: heartbeat or takeover failed: %s", exc)
        await asyncio.sleep(fleet.interval_s)
