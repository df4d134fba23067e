"""Settings of operations: feature flags and the health monitor (part of ``Settings``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from helios.config.section import Section


class FlagSettings(Section):
    poll_interval_s: float = Field(
        default=10.0, gt=0, description="how often running processes re-read overrides"
    )


MonitorMetric = Literal[
    "async_fallback_rate", "error_rate", "second_pass_rate", "cache_hit_rate", "p95_latency_s"
]


class MonitorRule(Section):
    """``metric op threshold`` over the window, with at least ``min_samples`` tasks, sets
    ``flag`` to ``value`` (a rollback)."""

    metric: MonitorMetric
    op: Literal[">", "<"] = ">"
    threshold: float
    min_samples: int = Field(default=20, ge=1)
    flag: str = "async_thesis"
    value: bool | int | float | str = False


def _default_rules() -> list[MonitorRule]:
    # The reference design's rollback rules for the async thesis.
    return [
        MonitorRule(metric="async_fallback_rate", threshold=0.10),
        MonitorRule(metric="error_rate", threshold=0.05),
    ]


class MonitorSettings(Section):
    enabled: bool = Field(default=False, description="run the monitor inside `helios serve`")
    hours: float = Field(default=1.0, gt=0)
    interval_s: float = Field(default=60.0, gt=0)
    rollback: bool = True
    alert: bool = True
    webhook_url: str | None = None
    rules: list[MonitorRule] = Field(default_factory=_default_rules)
