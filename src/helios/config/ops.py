"""Settings of operations: feature flags and the health monitor (part of ``Settings``).

A monitor rule is a condition and its actions::

    monitor:
      rules:
        - name: cache_hit_rate_low        # a rule named as a default replaces it
          metric: cache_hit_rate
          op: "<"
          threshold: 0.2
          min_samples: 50
          actions: [alert]                # alert only: no flag changes
        - name: errors_off_parallel_prep
          metric: error_rate
          threshold: 0.1
          actions: [alert, rollback]
          flag: parallel_prep
          value: false

User rules are added to the defaults (:data:`DEFAULT_RULES`, the reference design's async
thesis rollbacks); ``default_rules: false`` leaves the defaults out.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from helios.config.section import Section


class FlagSettings(Section):
    poll_interval_s: float = Field(
        default=10.0, gt=0, description="how often running processes re-read overrides"
    )


MonitorMetric = Literal[
    "async_fallback_rate",
    "error_rate",
    "second_pass_rate",
    "acceptance_rate",
    "cache_hit_rate",
    "p95_latency_s",
]
RuleAction = Literal["alert", "rollback"]
DEFAULT_FLAG = "async_thesis"
DEFAULT_VALUE = False


def _both_actions() -> list[RuleAction]:
    return ["alert", "rollback"]


class MonitorRule(Section):
    """``metric op threshold`` over the window, with at least ``min_samples`` tasks, does
    its ``actions``: ``alert`` (a log line and the webhook) and/or ``rollback`` (set
    ``flag`` to ``value``)."""

    name: str | None = Field(
        default=None,
        min_length=1,
        description="how alerts and reports name the rule; default: 'metric op threshold'",
    )
    metric: MonitorMetric
    op: Literal[">", "<"] = ">"
    threshold: float
    min_samples: int = Field(default=20, ge=1)
    actions: list[RuleAction] = Field(default_factory=_both_actions, min_length=1)
    flag: str = DEFAULT_FLAG
    value: bool | int | float | str = DEFAULT_VALUE

    @model_validator(mode="after")
    def _consistent(self) -> MonitorRule:
        if not math.isfinite(self.threshold):
            raise PydanticCustomError("monitor_rule", "threshold must be a finite number")
        if self.metric.endswith("_rate") and not 0 <= self.threshold <= 1:
            raise PydanticCustomError(
                "monitor_rule",
                "threshold of {metric} is a rate between 0 and 1 (10 % is 0.1), got {threshold}",
                {"metric": self.metric, "threshold": self.threshold},
            )
        if len(set(self.actions)) != len(self.actions):
            raise PydanticCustomError("monitor_rule", "actions lists an action twice")
        # compared with the defaults, not the keys given: settings dumped and read back
        # (model_dump) give every key
        given = [
            name
            for name, default in (("flag", DEFAULT_FLAG), ("value", DEFAULT_VALUE))
            if getattr(self, name) != default or type(getattr(self, name)) is not type(default)
        ]
        if given and not self.rolls_back:
            raise PydanticCustomError(
                "monitor_rule",
                "only the rollback action uses {fields}: add rollback to actions "
                "(actions: [alert, rollback]) or remove {fields}",
                {"fields": " and ".join(given)},
            )
        if self.name is None:
            self.name = f"{self.metric} {self.op} {self.threshold:g}"
        return self

    @property
    def label(self) -> str:
        """The rule's name (given, or ``metric op threshold``)."""
        return self.name or f"{self.metric} {self.op} {self.threshold:g}"

    @property
    def alerts(self) -> bool:
        return "alert" in self.actions

    @property
    def rolls_back(self) -> bool:
        return "rollback" in self.actions


DEFAULT_RULES: tuple[MonitorRule, ...] = (
    # The reference design's rollback rules for the async thesis.
    MonitorRule(name="async_thesis_fallbacks", metric="async_fallback_rate", threshold=0.10),
    MonitorRule(name="async_thesis_errors", metric="error_rate", threshold=0.05),
)


class MonitorSettings(Section):
    enabled: bool = Field(
        default=True,
        description="run the monitor inside `helios serve` every interval_s (once per interval"
        " for a fleet that shares a task database)",
    )
    hours: float = Field(default=1.0, gt=0, description="the window each check reads, in hours")
    interval_s: float = Field(
        default=3600.0, gt=0, description="seconds between checks (the reference design: hourly)"
    )
    rollback: bool = Field(default=True, description="let rules roll flags back (off: dry run)")
    alert: bool = Field(default=True, description="let rules alert")
    webhook_url: str | None = None
    default_rules: bool = Field(default=True, description="apply the default rules besides `rules`")
    rules: list[MonitorRule] = Field(
        default_factory=list,
        description="rules added to the defaults; one named as a default replaces it",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> MonitorSettings:
        seen: dict[str, int] = {}
        for index, rule in enumerate(self.rules):
            if rule.label in seen:
                raise PydanticCustomError(
                    "monitor_rules",
                    "rules {first} and {second} are both named '{name}': give each a name",
                    {"first": seen[rule.label], "second": index, "name": rule.label},
                )
            seen[rule.label] = index
        return self

    def effective_rules(self) -> list[MonitorRule]:
        """The rules every check applies: the defaults (unless ``default_rules`` is off),
        each replaced by the user rule of its name, then the other user rules in order."""
        if not self.default_rules:
            return list(self.rules)
        mine = {rule.label: rule for rule in self.rules}
        defaults = [mine.get(rule.label, rule) for rule in DEFAULT_RULES]
        names = {rule.label for rule in DEFAULT_RULES}
        return [*defaults, *(rule for rule in self.rules if rule.label not in names)]
