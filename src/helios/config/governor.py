"""Settings for the resource governor (the ``governor:`` section of the settings).

Example (``helios.yaml``)::

    governor:
      enabled: true
      backend: sqlite            # memory | sqlite | redis
      budgets:
        - account: claude-max
          providers: [anthropic]
          unit: tokens           # tokens (tier-weighted) | requests | usd
          windows:
            - {name: 5h, kind: session, length_s: 18000, limit: 2000000}
            - {name: week, kind: sliding, length_s: 604800, limit: 20000000}
          on_exhausted: downgrade
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from helios.catalog import Tier
from helios.config.breaker import BreakerSettings, breaker_defaults
from helios.config.paths import data_dir
from helios.config.section import Section

WindowKind = Literal["session", "sliding"]
BudgetUnit = Literal["tokens", "requests", "usd"]
OnExhausted = Literal["downgrade", "defer", "reject"]
StateBackend = Literal["memory", "sqlite", "redis"]

SESSION_LENGTH_S = 5 * 3600.0


def _default_tier_weights() -> dict[Tier, float]:
    return {"strong": 5.0, "fast": 1.0, "local": 0.0}


class WindowSettings(Section):
    """One usage window. ``session``: starts at the first request and resets ``length_s``
    later; ``sliding``: counts the usage of the last ``length_s`` seconds."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    kind: WindowKind = "session"
    length_s: float = Field(default=SESSION_LENGTH_S, gt=0)
    limit: float = Field(ge=0)


class BudgetSettings(Section):
    """A budget for one account: its windows, what it counts and what happens when full."""

    account: str = Field(default="default", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    providers: list[str] = Field(
        default_factory=list, description="providers this budget covers; empty: every provider"
    )
    unit: BudgetUnit = "tokens"
    tier_weights: dict[Tier, float] = Field(
        default_factory=_default_tier_weights,
        description="tokens unit: a token of a model of this tier counts this many units",
    )
    windows: list[WindowSettings] = Field(min_length=1)
    high_priority_share: float = Field(
        default=0.2, ge=0.0, le=1.0, description="share of each window kept for high priority"
    )
    on_exhausted: OnExhausted = "downgrade"
    max_defer_s: float = Field(default=600.0, ge=0)

    @model_validator(mode="after")
    def _unique_window_names(self) -> BudgetSettings:
        names = [window.name for window in self.windows]
        if len(names) != len(set(names)):
            raise ValueError(f"budget '{self.account}': window names must be unique ({names})")
        return self

    def covers(self, provider: str) -> bool:
        return not self.providers or provider in self.providers


class GovernorSettings(Section):
    enabled: bool = False
    backend: StateBackend = "sqlite"
    path: Path | None = Field(default=None, description="SQLite file; default: user data dir")
    redis_url: str | None = None
    redis_prefix: str = "helios:gov"
    redis_breaker: BreakerSettings = Field(
        default_factory=lambda: breaker_defaults(1.0),
        description="Redis: deadline per operation and circuit breaker",
    )
    on_state_error: Literal["reject", "allow"] = Field(
        default="reject",
        description="when the state store cannot be reached: refuse calls (503) or let them"
        " through unbudgeted",
    )
    default_max_tokens: int = Field(
        default=1024, gt=0, description="output tokens reserved for a request without max_tokens"
    )
    stale_reservation_s: float = Field(
        default=3600.0, gt=0, description="a reservation never settled is dropped this late"
    )
    budgets: list[BudgetSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_accounts(self) -> GovernorSettings:
        accounts = [budget.account for budget in self.budgets]
        if len(accounts) != len(set(accounts)):
            raise ValueError(f"governor budgets: accounts must be unique ({accounts})")
        return self

    def sqlite_path(self) -> Path:
        return self.path if self.path is not None else data_dir() / "governor.sqlite3"
