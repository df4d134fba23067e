"""The health monitor: rates over a recent window of the ledger, and rules that act on them.

Every check reads the events of the last ``hours`` and computes, per task:

- ``async_fallback_rate``: tasks with an ``async_fallback`` / tasks that ran the async thesis
- ``error_rate``: tasks that failed (``task_finished.success`` false, or an ``error`` event,
  unless the task finished well: a retried call is no failure) or were abandoned / tasks
  that ended. A task is *abandoned* when it started more than ``abandoned_after_s``
  (``ledger.abandoned_after_s``) ago and never ended: its process was killed, and it ends,
  as a failure, at that moment (so the window looks back that much further for starts). A
  task that failed on its input (an ``error`` of kind ``input_error``: a prompt too long for
  the model) ended but is no failure of Helios
- ``second_pass_rate``: finished tasks that needed a ``second_pass`` / finished tasks
- ``acceptance_rate``: tasks whose answer passed the quality gate / finished tasks the gate
  judged (tasks with no gate count in neither)
- ``cache_hit_rate``: ``cache_lookup`` hits / lookups (over the tasks that looked up)
- ``p95_latency_s``: the 95th percentile of ``task_finished.duration_s``
  (:func:`helios.percentiles.percentile`)

A cancelled task (an ``error`` of a cancellation kind: Ctrl-C) counts in none of them.

A rule (``metric op threshold``) fires only over at least ``min_samples`` relevant tasks, so
one failure in two tasks never rolls anything back. A firing rule does its actions: a
``rollback`` sets its flag's override (once: not again while it already holds that value),
an ``alert`` posts to the webhook (once while the rule keeps firing, and with every
rollback). ``monitor.rollback`` and ``monitor.alert`` switch either off for every rule.
Events with implausible values (:mod:`helios.ledger.validation`) are left out, with a
logged warning.
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
from helios.errors import ConfigError, HeliosError
from helios.ledger.events import (
    CANCELLED_KINDS,
    INPUT_ERROR,
    AsyncFallback,
    CacheLookup,
    ErrorEvent,
    Event,
    FlagValue,
    GateVerdict,
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
    "gate_verdict",
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
    """``none``, ``too_few_samples``, ``rolled_back``, ``already_rolled_back``,
    ``rollback_failed``, ``alerted`` (fired, no rollback to do), or ``firing`` (fired with
    each of its actions switched off)."""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        rolls_back = self.rule.rolls_back
        return {
            "name": self.rule.label,
            "metric": self.rule.metric,
            "op": self.rule.op,
            "threshold": self.rule.threshold,
            "min_samples": self.rule.min_samples,
            "actions": list(self.rule.actions),
            "flag": self.rule.flag if rolls_back else None,
            "value": self.rule.value if rolls_back else None,
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
    succeeded: set[str] = set()
    errored: set[str] = set()
    input_failed: set[str] = set()
    cancelled: set[str] = set()
    second: set[str] = set()
    gated: set[str] = set()
    accepted: set[str] = set()
    looked_up: set[str] = set()
    lookups = hits = 0
    durations: dict[str, float] = {}
    for event in window:
        if isinstance(event, TaskStarted):
            started.add(event.task_id)
            if event.flags.get("async_thesis") is True:
                async_on.add(event.task_id)
        elif isinstance(event, TaskFinished):
            finished.add(event.task_id)
            durations[event.task_id] = event.duration_s
            if event.success:
                succeeded.add(event.task_id)
            if event.accepted_pass is not None:
                accepted.add(event.task_id)
            if event.accepted_pass is not None or event.passes > 0:
                gated.add(event.task_id)
        elif isinstance(event, ErrorEvent):
            if event.kind in CANCELLED_KINDS:
                cancelled.add(event.task_id)
            elif event.kind == INPUT_ERROR:
                input_failed.add(event.task_id)
            else:
                errored.add(event.task_id)
        elif isinstance(event, GateVerdict):
            gated.add(event.task_id)
            if event.passed:
                accepted.add(event.task_id)
        elif isinstance(event, AsyncFallback):
            fell_back.add(event.task_id)
        elif isinstance(event, SecondPass):
            second.add(event.task_id)
        elif isinstance(event, CacheLookup):
            looked_up.add(event.task_id)
            lookups += 1
            hits += event.hit
    # A cancelled task (Ctrl-C) tells nothing of Helios's health: it counts in no rate. A
    # task that finished well failed nothing, whatever errors it survived (a retried call).
    cancelled -= succeeded
    failed = ((finished - succeeded) | errored) - succeeded - cancelled
    failed_on_input = (input_failed - succeeded - cancelled) - errored
    failed -= failed_on_input
    abandoned = _abandoned(events, since, now, abandoned_after_s) - cancelled
    done = finished - cancelled
    # A fallback proves the async thesis was on, even for a task started before the window.
    async_tasks = (async_on | fell_back) - cancelled
    ended = (finished | failed | failed_on_input | abandoned) - cancelled
    metrics = {
        "async_fallback_rate": _rate(len(fell_back & async_tasks), len(async_tasks)),
        "error_rate": _rate(len((failed | abandoned) & ended), len(ended)),
        "second_pass_rate": _rate(len(second & done), len(done)),
        "acceptance_rate": _rate(len(accepted & gated & done), len(gated & done)),
        "cache_hit_rate": Measure(hits / lookups if lookups else None, len(looked_up)),
        "p95_latency_s": Measure(percentile([durations[task] for task in done], 0.95), len(done)),
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
    """Checks the ledger's recent health and applies ``settings.effective_rules()``.

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
        self.rules = settings.effective_rules()
        for rule in self.rules:
            if rule.rolls_back:
                try:
                    validate_flag_value(rule.flag, rule.value)  # a bad rule fails at start-up
                except ConfigError as exc:
                    raise ConfigError(f"monitor.rules: rule '{rule.label}': {exc}") from None
        self.store = store
        self.settings = settings
        self.alerter = alerter
        self._clock = clock
        self.abandoned_after_s = abandoned_after_s
        self._firing: set[str] = set()
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
        for rule in self.rules:
            was_firing = rule.label in self._firing
            outcomes.append(await self._apply(rule, metrics[rule.metric], was_firing))
        self._firing = {outcome.rule.label for outcome in outcomes if outcome.fired}
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
        alerting = rule.alerts and self.settings.alert
        action = "alerted" if alerting else "firing"
        if rule.rolls_back and self.settings.rollback:
            action = await self._roll_back(rule, reason)
        # A rollback always alerts; a rule that stays firing without one alerts only once.
        news = action == "rolled_back" or (action != "already_rolled_back" and not was_firing)
        if news and alerting and self.alerter is not None:
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
            "name": rule.label,
            "rule": f"{rule.metric} {rule.op} {rule.threshold:g}",
            "actions": list(rule.actions),
            "metric": rule.metric,
            "value": value,
            "threshold": rule.threshold,
            "op": rule.op,
            "n": samples,
            "window_hours": self.settings.hours,
            "flag": rule.flag if rule.rolls_back else None,
            "flag_value": rule.value if rule.rolls_back else None,
            "action": action,
            "reason": reason,
        }


def _rate(part: int, whole: int) -> Measure:
    return Measure(part / whole if whole else None, whole)


def _same(current: FlagValue | None, wanted: FlagValue) -> bool:
    # True == 1 in Python; an override of 1 is not the flag value True.
    return current is not None and type(current) is type(wanted) and current == wanted
