"""The health monitor: rates over a recent window of the ledger, and rules that roll back.

Every check reads the events of the last ``hours`` and computes, per task:

- ``async_fallback_rate``: tasks with an ``async_fallback`` / tasks that ran the async thesis
- ``error_rate``: tasks that failed (``task_finished.success`` false, or an ``error`` event)
  or were abandoned / tasks that ended. A task is *abandoned* when it started more than
  ``abandoned_after_s`` (``ledger.abandoned_after_s``) ago and never ended: its process was
  killed, and it ends, as a failure, at that moment (so the window looks back that much
  further for starts). A task that failed on its input (an ``error`` of kind
  ``input_error``: a prompt too long for the model) ended but is no failure of Helios
- ``second_pass_rate``: finished tasks that needed a ``second_pass`` / finished tasks
- ``cache_hit_rate``: ``cache_lookup`` hits / lookups (over the tasks that looked up)
- ``p95_latency_s``: the 95th percentile of ``task_finished.duration_s``
  (:func:`helios.percentiles.percentile`)

A rule (``metric op threshold``) fires only over at least ``min_samples`` relevant tasks, so
one failure in two tasks never rolls anything back. A firing rule sets its flag's override
(once: not again while it already holds that value) and raises an alert. Events with
implausible values (:mod:`helios.ledger.validation`) are left out, with a logged warning.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from helios.config.ledger import DEFAULT_ABANDONED_AFTER_S
from helios.config.ops import MonitorRule, MonitorSettings
from helios.errors import HeliosError
from helios.ledger.events import (
    INPUT_ERROR,
    AsyncFallback,
    CacheLookup,
    ErrorEvent,
    Event,
    FlagValue,
    SecondPass,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.store import EventQuery, LedgerStore
from helios.ledger.validation import screen
from helios.ops.flags import validate_flag_value
from helios.percentiles import percentile

if TYPE_CHECKING:
    from helios.ops.alerts import Alerter

logger = logging.getLogger("helios.monitor")

_TYPES = (
    "task_started",
    "task_finished",
    "async_fallback",
    "error",
    "second_pass",
    "cache_lookup",
)


@dataclass(frozen=True, slots=True)
class Measure:
    """One metric over the window: its value (``None`` without samples) and sample size."""

    value: float | None
    samples: int


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    rule: MonitorRule
    value: float | None
    samples: int
    fired: bool
    action: str
    """``none``, ``too_few_samples``, ``rolled_back``, ``already_rolled_back``, ``alerted``,
    or ``rollback_failed``."""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.rule.metric,
            "op": self.rule.op,
            "threshold": self.rule.threshold,
            "min_samples": self.rule.min_samples,
            "flag": self.rule.flag,
            "value": self.rule.value,
            "observed": self.value,
            "samples": self.samples,
            "fired": self.fired,
            "action": self.action,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class HealthReport:
    checked_at: float
    window_hours: float
    tasks: int
    metrics: dict[str, Measure]
    rules: list[RuleOutcome] = field(default_factory=list)

    @property
    def firing(self) -> list[RuleOutcome]:
        return [outcome for outcome in self.rules if outcome.fired]

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at,
            "window_hours": self.window_hours,
            "tasks": self.tasks,
            "metrics": {
                name: {"value": m.value, "samples": m.samples} for name, m in self.metrics.items()
            },
            "rules": [outcome.to_dict() for outcome in self.rules],
            "healthy": not self.firing,
        }


def measure(
    events: Sequence[Event],
    *,
    since: float | None = None,
    now: float | None = None,
    abandoned_after_s: float | None = None,
) -> tuple[int, dict[str, Measure]]:
    """The number of tasks started and every monitored metric over the events at or after
    ``since`` (all of them by default). With ``now`` and ``abandoned_after_s``, a task that
    started before ``now - abandoned_after_s`` and never finished is abandoned; it counts
    when that moment falls in the window, so ``events`` should reach that much earlier."""
    window = events if since is None else [e for e in events if e.timestamp >= since]
    started: set[str] = set()
    async_on: set[str] = set()
    fell_back: set[str] = set()
    finished: set[str] = set()
    failed: set[str] = set()
    input_failed: set[str] = set()
    second: set[str] = set()
    looked_up: set[str] = set()
    lookups = hits = 0
    durations: list[float] = []
    for event in window:
        if isinstance(event, TaskStarted):
            started.add(event.task_id)
            if event.flags.get("async_thesis") is True:
                async_on.add(event.task_id)
        elif isinstance(event, TaskFinished):
            finished.add(event.task_id)
            durations.append(event.duration_s)
            if not event.success:
                failed.add(event.task_id)
        elif isinstance(event, ErrorEvent):
            (input_failed if event.kind == INPUT_ERROR else failed).add(event.task_id)
        elif isinstance(event, AsyncFallback):
            fell_back.add(event.task_id)
        elif isinstance(event, SecondPass):
            second.add(event.task_id)
        elif isinstance(event, CacheLookup):
            looked_up.add(event.task_id)
            lookups += 1
            hits += event.hit
    failed_on_input = input_failed - {
        e.task_id for e in window if isinstance(e, ErrorEvent) and e.kind != INPUT_ERROR
    }
    failed -= failed_on_input
    abandoned = _abandoned(events, since, now, abandoned_after_s)
    # A fallback proves the async thesis was on, even for a task started before the window.
    async_tasks = async_on | fell_back
    ended = finished | failed | failed_on_input | abandoned
    metrics = {
        "async_fallback_rate": _rate(len(fell_back & async_tasks), len(async_tasks)),
        "error_rate": _rate(len((failed | abandoned) & ended), len(ended)),
        "second_pass_rate": _rate(len(second & finished), len(finished)),
        "cache_hit_rate": Measure(hits / lookups if lookups else None, len(looked_up)),
        "p95_latency_s": Measure(percentile(durations, 0.95), len(durations)),
    }
    return len(started), metrics


def _abandoned(
    events: Sequence[Event], since: float | None, now: float | None, after_s: float | None
) -> set[str]:
    """Tasks whose start is more than ``after_s`` before ``now`` (and whose abandonment,
    ``after_s`` after the start, is not before ``since``) with no ``task_finished``."""
    if now is None or after_s is None:
        return set()
    earliest = -math.inf if since is None else since - after_s
    candidates = {
        e.task_id
        for e in events
        if isinstance(e, TaskStarted) and earliest <= e.timestamp < now - after_s
    }
    return candidates - {e.task_id for e in events if isinstance(e, TaskFinished)}


class HealthMonitor:
    """Checks the ledger's recent health and applies ``settings.rules``.

    ``latest`` holds the last report (``None`` before the first check). ``clock`` gives
    seconds since the epoch, the time base of event timestamps. ``abandoned_after_s``: how
    long after its start a task that never ended counts as abandoned (a failure).
    """

    def __init__(
        self,
        store: LedgerStore,
        settings: MonitorSettings,
        *,
        alerter: Alerter | None,
        clock: Callable[[], float] = time.time,
        abandoned_after_s: float = DEFAULT_ABANDONED_AFTER_S,
    ) -> None:
        for rule in settings.rules:
            validate_flag_value(rule.flag, rule.value)  # a bad rule fails at start-up
        self.store = store
        self.settings = settings
        self.alerter = alerter
        self._clock = clock
        self.abandoned_after_s = abandoned_after_s
        self._firing: set[int] = set()
        self.latest: HealthReport | None = None

    async def check(self) -> HealthReport:
        now = self._clock()
        since = now - self.settings.hours * 3600
        # further back by the timeout: a task abandoned in the window started before it
        stored = await self.store.query(
            EventQuery(since=since - self.abandoned_after_s, types=_TYPES)
        )
        screened = screen(stored, now=now)
        if screened.skipped:
            logger.warning("health check: %s", screened.warning())
        tasks, metrics = measure(
            screened.events, since=since, now=now, abandoned_after_s=self.abandoned_after_s
        )
        outcomes = []
        for index, rule in enumerate(self.settings.rules):
            outcome = await self._apply(rule, metrics[rule.metric], index in self._firing)
            outcomes.append(outcome)
        self._firing = {index for index, outcome in enumerate(outcomes) if outcome.fired}
        report = HealthReport(now, self.settings.hours, tasks, metrics, outcomes)
        self.latest = report
        return report

    async def run(
        self,
        interval_s: float,
        *,
        once: bool = False,
        on_report: Callable[[HealthReport], None] | None = None,
    ) -> HealthReport | None:
        """Check every ``interval_s`` until cancelled (or once). A failed check is logged
        and retried at the next interval; with ``once`` it raises."""
        while True:
            try:
                report = await self.check()
            except (HeliosError, OSError) as exc:
                if once:
                    raise
                logger.warning("health check failed: %s", exc)
            else:
                if on_report is not None:
                    on_report(report)
                if once:
                    return report
            await asyncio.sleep(interval_s)

    async def _apply(self, rule: MonitorRule, measured: Measure, was_firing: bool) -> RuleOutcome:
        value, samples = measured.value, measured.samples
        if value is None or samples < rule.min_samples:
            return RuleOutcome(rule, value, samples, False, "too_few_samples")
        breached = value > rule.threshold if rule.op == ">" else value < rule.threshold
        if not breached:
            return RuleOutcome(rule, value, samples, False, "none")
        reason = (
            f"{rule.metric} {value:.2f} {rule.op} {rule.threshold:.2f} "
            f"over {samples} tasks in the last {self.settings.hours:g} h"
        )
        action = "alerted"
        if self.settings.rollback:
            action = await self._roll_back(rule, reason)
        # A rollback always alerts; a rule that stays firing without one alerts only once.
        news = action == "rolled_back" or (action != "already_rolled_back" and not was_firing)
        if news and self.settings.alert and self.alerter is not None:
            self.alerter.alert(self._payload(rule, value, samples, action, reason))
        return RuleOutcome(rule, value, samples, True, action, reason)

    async def _roll_back(self, rule: MonitorRule, reason: str) -> str:
        try:
            overrides = await self.store.flag_overrides()
            if _same(overrides.get(rule.flag), rule.value):
                return "already_rolled_back"
            await self.store.set_flag_override(
                rule.flag, rule.value, actor="monitor", reason=reason
            )
        except (HeliosError, OSError) as exc:
            logger.warning("could not roll back %s: %s", rule.flag, exc)
            return "rollback_failed"
        logger.warning("rolled back %s to %r: %s", rule.flag, rule.value, reason)
        return "rolled_back"

    def _payload(
        self, rule: MonitorRule, value: float, samples: int, action: str, reason: str
    ) -> dict[str, Any]:
        return {
            "source": "helios.monitor",
            "rule": f"{rule.metric} {rule.op} {rule.threshold:g}",
            "metric": rule.metric,
            "value": value,
            "threshold": rule.threshold,
            "op": rule.op,
            "n": samples,
            "window_hours": self.settings.hours,
            "flag": rule.flag,
            "flag_value": rule.value,
            "action": action,
            "reason": reason,
        }


def _rate(part: int, whole: int) -> Measure:
    return Measure(part / whole if whole else None, whole)


def _same(current: FlagValue | None, wanted: FlagValue) -> bool:
    # True == 1 in Python; an override of 1 is not the flag value True.
    return current is not None and type(current) is type(wanted) and current == wanted
