"""Where the governor keeps its windows: memory, SQLite (one machine) or Redis (many)."""

from __future__ import annotations

from helios.config.governor import GovernorSettings
from helios.governance.state.base import GovernorState
from helios.governance.state.memory import MemoryState
from helios.governance.state.sqlite import SQLiteState

__all__ = ["GovernorState", "MemoryState", "SQLiteState", "open_state"]


def open_state(settings: GovernorSettings) -> GovernorState:
    """The backend the settings name (Redis is imported only when chosen)."""
    stale = settings.stale_reservation_s
    if settings.backend == "memory":
        return MemoryState(stale_after_s=stale)
    if settings.backend == "sqlite":
        return SQLiteState(settings.sqlite_path(), stale_after_s=stale)
    from helios.errors import ConfigError

    if not settings.redis_url:
        raise ConfigError("governor.backend is redis but governor.redis_url is not set")
    from helios.governance.state.redis import RedisState

    return RedisState(
        settings.redis_url,
        prefix=settings.redis_prefix,
        stale_after_s=stale,
        breaker=settings.redis_breaker,
    )
