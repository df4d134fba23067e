"""Settings of the API key store (the ``keys:`` section of the settings).

Example (``helios.yaml``)::

    keys:
      backend: postgres          # sqlite (default) | postgres
      postgres_url: postgresql://helios@db:5432/helios
      cache_s: 5                 # a revocation in another process counts within this
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from helios.config.breaker import BreakerSettings, breaker_defaults
from helios.config.paths import data_dir
from helios.config.section import Section


class KeySettings(Section):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: Path | None = Field(default=None, description="SQLite file; default: user data dir")
    postgres_url: str | None = Field(
        default=None, description="postgresql://... (backend postgres)"
    )
    postgres_schema: str = Field(
        default="public",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema of the api_keys table (created when missing)",
    )
    postgres_breaker: BreakerSettings = Field(
        default_factory=lambda: breaker_defaults(0.25),
        description="PostgreSQL: deadline per operation and circuit breaker",
    )
    cache_s: float = Field(
        default=5.0,
        ge=0,
        description="how long a server trusts what it read about a key: a key revoked or"
        " created by another process counts within this (0: read the store on every call)",
    )

    def resolved_path(self) -> Path:
        return self.path if self.path is not None else data_dir() / "keys.sqlite3"
