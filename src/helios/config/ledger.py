"""Settings of the event ledger (part of ``Settings``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from helios.config.paths import data_dir
from helios.config.section import Section


class LedgerSettings(Section):
    enabled: bool = True
    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: Path | None = Field(default=None, description="SQLite file; default: user data dir")
    postgres_url: str | None = Field(
        default=None, description="postgresql://... (backend postgres)"
    )
    batch_size: int = Field(default=500, ge=1)
    flush_interval_s: float = Field(default=0.05, gt=0)

    def resolved_path(self) -> Path:
        return self.path if self.path is not None else data_dir() / "ledger.sqlite3"
