"""Settings of durable tasks (the ``tasks:`` section): where DBOS keeps them, the queue,
how many run at once, how workers prove they are alive.

Example (``helios.yaml``), a fleet on PostgreSQL::

    tasks:
      system_database_url: postgresql://helios@db.internal:5432/helios
      worker_concurrency: 1        # the reference design's "single worker enforced"
      heartbeat_timeout_s: 10      # a worker silent this long has its tasks taken over
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from helios.config.paths import data_dir
from helios.config.section import Section

_QUEUE_NAME = r"^[a-z][a-z0-9_-]{0,62}$"


class TasksSettings(Section):
    enabled: bool = Field(
        default=True,
        description="`helios serve` takes tasks (/api/v1/tasks) and runs them in-process",
    )
    system_database_url: str | None = Field(
        default=None,
        description="DBOS's system database: sqlite:///path or postgresql://...; default: a"
        " SQLite file tasks.sqlite in the data dir (one machine); PostgreSQL to scale out",
    )
    schema_name: str = Field(
        default="dbos",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema of DBOS's and Helios's task tables",
    )
    queue: str = Field(default="tasks", pattern=_QUEUE_NAME, description="the default queue")
    worker_concurrency: int | None = Field(
        default=2, ge=1, description="tasks one process runs at once (null: no limit)"
    )
    global_concurrency: int | None = Field(
        default=None, ge=1, description="tasks the whole fleet runs at once (null: no limit)"
    )
    poll_interval_s: float = Field(
        default=0.05,
        ge=0.001,
        description="how often a worker looks for queued tasks (start latency; a query each)",
    )
    stream_poll_s: float = Field(
        default=0.01,
        ge=0.001,
        description="how often an event stream reader polls without LISTEN/NOTIFY (SQLite)",
    )
    chunk_flush_s: float = Field(
        default=0.005,
        ge=0,
        description="text chunks written to a task's event stream at most this often (0: each)",
    )
    cancel_poll_s: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="how often a running persona call checks whether its task was cancelled",
    )
    heartbeat_interval_s: float = Field(default=2.0, gt=0, description="seconds between beats")
    heartbeat_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="a worker silent this long is dead: another takes its tasks over",
    )
    executor_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$",
        description="this process's name in the fleet (a restart with the same name resumes"
        " its tasks at once); default: the host name for `helios serve`, host-worker for a"
        " worker",
    )
    max_documents: int = Field(default=50, ge=0, description="documents one task may carry")
    max_task_bytes: int = Field(
        default=8_000_000, ge=1, description="all of one task's documents together, in bytes"
    )
    document_folders: list[Path] = Field(
        default_factory=list,
        description="server folders a task may name documents in (admin keys only); empty:"
        " documents travel with the task",
    )

    @model_validator(mode="after")
    def _timeout_above_interval(self) -> TasksSettings:
        if self.heartbeat_timeout_s <= 2 * self.heartbeat_interval_s:
            raise ValueError(
                f"heartbeat_timeout_s ({self.heartbeat_timeout_s:g}) must exceed twice"
                f" heartbeat_interval_s ({self.heartbeat_interval_s:g}): one late beat"
                " would otherwise count a live worker as dead"
            )
        return self

    def resolved_database_url(self) -> str:
        if self.system_database_url:
            return self.system_database_url
        return f"sqlite:///{data_dir() / 'tasks.sqlite'}"

    @property
    def on_postgres(self) -> bool:
        return self.resolved_database_url().startswith(("postgresql", "postgres:"))
