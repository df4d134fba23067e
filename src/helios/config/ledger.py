"""Settings of the event ledger (part of ``Settings``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from helios.config.paths import data_dir
from helios.config.section import Section

DEFAULT_ABANDONED_AFTER_S = 900.0
"""A task started 15 minutes ago without an end has crashed: no task runs that long."""


class LedgerSettings(Section):
    enabled: bool = True
    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: Path | None = Field(default=None, description="SQLite file; default: user data dir")
    postgres_url: str | None = Field(
        default=None, description="postgresql://... (backend postgres)"
    )
    postgres_schema: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema of the ledger's tables, created if missing; default:"
        " the URL's options=-csearch_path=..., else public",
    )
    abandoned_after_s: float = Field(
        default=DEFAULT_ABANDONED_AFTER_S,
        gt=0,
        description="a task started this long ago with no end counts as abandoned (crashed)",
    )
    batch_size: int = Field(default=500, ge=1)
    flush_interval_s: float = Field(default=0.05, gt=0)
    commit_before_answer_s: float = Field(
        default=0.5,
        ge=0,
        description="helios serve answers a request once its events are committed, waiting"
        " this long at most (0: answer at once; a crash may then lose the last events)",
    )

    def resolved_path(self) -> Path:
        return self.path if self.path is not None else data_dir() / "ledger.sqlite3"
