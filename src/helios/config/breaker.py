"""Settings of the deadline and circuit breaker in front of one external store
(:mod:`helios.breaker`): ``cache.redis_breaker``, ``cache.semantic.postgres_breaker``,
``governor.redis_breaker`` and ``keys.postgres_breaker``."""

from __future__ import annotations

from pydantic import Field

from helios.config.section import Section


class BreakerSettings(Section):
    """How long one operation may take, and when to stop asking a store that fails."""

    deadline_s: float = Field(
        default=0.05,
        gt=0,
        le=60,
        description="one operation's deadline (a timeout counts as a failure)",
    )
    failures: int = Field(
        default=3, ge=1, description="consecutive failures or timeouts that open the circuit"
    )
    cooldown_s: float = Field(
        default=5.0, gt=0, description="how long an open circuit fails at once before one probe"
    )


def breaker_defaults(deadline_s: float) -> BreakerSettings:
    return BreakerSettings(deadline_s=deadline_s)
