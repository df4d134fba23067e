"""The health monitor (rates, rules, rollbacks) and the alerter (log line, webhook)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import Any

import pytest

from helios.config.ops import MonitorRule, MonitorSettings
from helios.ledger.events import (
    AsyncFallback,
    CacheLookup,
    ErrorEvent,
    Event,
    FlagChanged,
    SecondPass,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.memory import MemoryLedgerStore
from helios.ops.alerts import Alerter
from helios.ops.monitor import HealthMonitor, measure, percentile
from tests.ops.conftest import Webhook

NOW = 1_700_000_000.0


def task(
    task_id: str,
    *,
    at: float = NOW - 60,
    async_thesis: bool = True,
    fallback: bool = False,
    success: bool = True,
    second_pass: bool = False,
    duration_s: float = 10.0,
    lookups: tuple[bool, ...] = (),
) -> list[Event]:
    events: list[Event] = [
        TaskStarted(task_id=task_id, goal="g", timestamp=at, flags={"async_thesis": async_thesis})
    ]
    if fallback:
        events.append(AsyncFallback(task_id=task_id, reason="timeout", timestamp=at + 1))
    events += [
        CacheLookup(task_id=task_id, persona="thesis", layer="L2", hit=hit, timestamp=at + 1)
        for hit in lookups
    ]
    if second_pass:
        events.append(SecondPass(task_id=task_id, pass_number=2, feedback="f", timestamp=at + 2))
    if not success:
        events.append(ErrorEvent(task_id=task_id, kind="X", message="m", timestamp=at + 3))
    events.append(
        TaskFinished(task_id=task_id, success=success, duration_s=duration_s, timestamp=at + 4)
    )
    return events


async def store_with(*tasks: list[Event]) -> MemoryLedgerStore:
    store = MemoryLedgerStore()
    await store.append([event for events in tasks for event in events])
    return store


def monitor_for(
    store: MemoryLedgerStore, alerter: Alerter | None = None, **settings: Any
) -> HealthMonitor:
    return HealthMonitor(store, MonitorSettings(**settings), alerter=alerter, clock=lambda: NOW)


async def flag_changes(store: MemoryLedgerStore) -> list[FlagChanged]:
    return [e for e in await store.query() if isinstance(e, FlagChanged)]


def test_measure_computes_every_rate() -> None:
    events = [
        *task("a", fallback=True, lookups=(True, False), duration_s=1),
        *task("b", success=False, second_pass=True, lookups=(True,), duration_s=2),
        *task("c", async_thesis=False, duration_s=3),
        *task("d", duration_s=4),
    ]
    tasks, metrics = measure(events)
    assert tasks == 4
    assert metrics["async_fallback_rate"].value == pytest.approx(1 / 3)
    assert metrics["async_fallback_rate"].samples == 3
    assert metrics["error_rate"].value == pytest.approx(1 / 4)
    assert metrics["second_pass_rate"].value == pytest.approx(1 / 4)
    assert metrics["cache_hit_rate"].value == pytest.approx(2 / 3)
    assert metrics["cache_hit_rate"].samples == 2
    assert metrics["p95_latency_s"].value == pytest.approx(3.85)
    empty_tasks, empty = measure([])
    assert empty_tasks == 0
    assert all(m.value is None and m.samples == 0 for m in empty.values())


def test_percentile_interpolates() -> None:
    assert percentile([], 0.95) is None
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == pytest.approx(95.05)


async def test_one_failure_in_two_tasks_never_rolls_back() -> None:
    store = await store_with(task("a"), task("b", success=False))
    report = await monitor_for(store).check()
    assert report.metrics["error_rate"].value == 0.5
    error_rule = next(o for o in report.rules if o.rule.metric == "error_rate")
    assert not error_rule.fired
    assert error_rule.action == "too_few_samples"
    assert await store.flag_overrides() == {}
    assert await flag_changes(store) == []


async def test_rolls_back_above_the_threshold_once(caplog: pytest.LogCaptureFixture) -> None:
    tasks = [task(f"t{n}", fallback=n < 13) for n in range(57)]
    store = await store_with(*tasks)
    alerter = Alerter(None)
    monitor = monitor_for(store, alerter)
    with caplog.at_level(logging.WARNING):
        report = await monitor.check()
    fired = report.firing
    assert [o.rule.metric for o in fired] == ["async_fallback_rate"]
    assert fired[0].action == "rolled_back"
    reason = "async_fallback_rate 0.23 > 0.10 over 57 tasks in the last 1 h"
    assert fired[0].reason == reason
    assert await store.flag_overrides() == {"async_thesis": False}
    [change] = await flag_changes(store)
    assert (change.flag, change.new, change.actor, change.reason) == (
        "async_thesis",
        False,
        "monitor",
        reason,
    )
    alerts = [r for r in caplog.records if r.name == "helios.alerts"]
    assert len(alerts) == 1
    assert alerts[0].levelno == logging.WARNING
    assert '"action": "rolled_back"' in alerts[0].getMessage()

    # Still firing at the next check: no second flag_changed, no second alert.
    caplog.clear()
    again = await monitor.check()
    assert again.firing[0].action == "already_rolled_back"
    assert len(await flag_changes(store)) == 1
    assert not [r for r in caplog.records if r.name == "helios.alerts"]
    await alerter.aclose()


async def test_rolls_back_again_after_a_manual_unset() -> None:
    store = await store_with(*[task(f"t{n}", success=n % 2 == 0) for n in range(30)])
    monitor = monitor_for(store)
    assert (await monitor.check()).firing[0].action == "rolled_back"
    await store.set_flag_override("async_thesis", None, actor="ana", reason="try again")
    assert (await monitor.check()).firing[0].action == "rolled_back"
    assert len(await flag_changes(store)) == 3


async def test_only_the_window_counts() -> None:
    old = [task(f"old{n}", at=NOW - 7200, success=False) for n in range(30)]
    recent = [task(f"new{n}") for n in range(30)]
    store = await store_with(*old, *recent)
    report = await monitor_for(store, hours=1).check()
    assert report.tasks == 30
    assert report.metrics["error_rate"].value == 0
    assert not report.firing
    wide = await monitor_for(store, hours=3).check()
    assert wide.tasks == 60
    assert wide.firing


async def test_a_rule_below_its_threshold_and_the_lt_operator() -> None:
    store = await store_with(*[task(f"t{n}", lookups=(False,)) for n in range(5)])
    rules = [
        MonitorRule(
            metric="cache_hit_rate",
            op="<",
            threshold=0.2,
            min_samples=5,
            flag="response_cache",
            value=False,
        ),
        MonitorRule(
            metric="p95_latency_s", threshold=60, min_samples=5, flag="max_passes", value=1
        ),
    ]
    report = await monitor_for(store, rules=rules, default_rules=False).check()
    assert [o.fired for o in report.rules] == [True, False]
    assert report.rules[1].action == "none"
    assert await store.flag_overrides() == {"response_cache": False}


async def test_without_rollback_it_alerts_once_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = await store_with(*[task(f"t{n}", success=False) for n in range(25)])
    alerter = Alerter(None)
    monitor = monitor_for(store, alerter, rollback=False)
    with caplog.at_level(logging.WARNING, logger="helios.alerts"):
        first = await monitor.check()
        await monitor.check()
    assert first.firing[0].action == "alerted"
    assert len([r for r in caplog.records if r.name == "helios.alerts"]) == 1
    assert await flag_changes(store) == []
    await alerter.aclose()


async def test_no_alert_when_alerts_are_off(caplog: pytest.LogCaptureFixture) -> None:
    store = await store_with(*[task(f"t{n}", success=False) for n in range(25)])
    alerter = Alerter(None)
    with caplog.at_level(logging.WARNING, logger="helios.alerts"):
        report = await monitor_for(store, alerter, alert=False).check()
    assert report.firing[0].action == "rolled_back"
    assert not [r for r in caplog.records if r.name == "helios.alerts"]
    await alerter.aclose()


async def test_a_rule_with_a_bad_flag_fails_at_start() -> None:
    from helios.errors import ConfigError

    rules = [MonitorRule(metric="error_rate", threshold=0.1, flag="max_passes", value=True)]
    with pytest.raises(ConfigError, match="flag max_passes"):
        monitor_for(MemoryLedgerStore(), rules=rules)


async def test_report_to_dict_is_json() -> None:
    store = await store_with(*[task(f"t{n}", fallback=True) for n in range(20)])
    report = await monitor_for(store).check()
    data = json.loads(json.dumps(report.to_dict()))
    assert data["tasks"] == 20
    assert data["healthy"] is False
    assert data["metrics"]["async_fallback_rate"] == {"value": 1.0, "samples": 20}
    assert data["rules"][0]["action"] == "rolled_back"
    assert data["rules"][1]["action"] == "none"


async def test_run_once_and_run_until_cancelled() -> None:
    store = await store_with(task("a"))
    monitor = monitor_for(store)
    seen: list[int] = []
    report = await monitor.run(60, once=True, on_report=lambda r: seen.append(r.tasks))
    assert report is not None and report.tasks == 1
    assert monitor.latest is report

    looping = asyncio.create_task(monitor.run(0.01, on_report=lambda r: seen.append(r.tasks)))
    while len(seen) < 4:
        await asyncio.sleep(0.01)
    looping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await looping


async def test_the_webhook_gets_the_json_body(webhook: Webhook) -> None:
    store = await store_with(*[task(f"t{n}", success=n % 4 != 0) for n in range(40)])
    alerter = Alerter(webhook.url, backoff_s=0.01)
    await monitor_for(store, alerter).check()
    await alerter.aclose()
    [body] = webhook.bodies
    assert body["metric"] == "error_rate"
    assert body["value"] == 0.25
    assert body["threshold"] == 0.05
    assert body["n"] == 40
    assert body["flag"] == "async_thesis"
    assert body["action"] == "rolled_back"
    assert body["reason"] == "error_rate 0.25 > 0.05 over 40 tasks in the last 1 h"


async def test_a_failing_webhook_is_retried(flaky_webhook: Webhook) -> None:
    alerter = Alerter(flaky_webhook.url, retries=3, backoff_s=0.01)
    alerter.alert({"rule": "r"})
    await alerter.wait(5)
    await alerter.aclose()
    assert flaky_webhook.attempts == 3
    assert flaky_webhook.bodies == [{"rule": "r"}]


async def test_an_unreachable_webhook_never_raises(
    flaky_webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    alerter = Alerter(flaky_webhook.url, retries=1, backoff_s=0.01)
    started = time.perf_counter()
    alerter.alert({"rule": "r"})
    assert time.perf_counter() - started < 0.5  # the caller does not wait for the post
    with caplog.at_level(logging.WARNING, logger="helios.alerts"):
        await alerter.wait(5)
    await alerter.aclose()
    assert flaky_webhook.bodies == []
    assert "failed after 2 attempt(s): HTTP 503" in caplog.text


async def test_a_closed_port_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    alerter = Alerter("http://127.0.0.1:9/hook", retries=0)
    with caplog.at_level(logging.WARNING, logger="helios.alerts"):
        alerter.alert({"rule": "r"})
        await alerter.aclose()
    assert "alert webhook http://127.0.0.1:9/hook failed after 1 attempt(s)" in caplog.text


async def test_aclose_abandons_posts_that_take_too_long(
    flaky_webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    alerter = Alerter(flaky_webhook.url, retries=5, backoff_s=10, close_timeout_s=0.05)
    alerter.alert({"rule": "r"})
    with caplog.at_level(logging.WARNING, logger="helios.alerts"):
        await alerter.aclose()
    assert "abandoned at shutdown" in caplog.text


def test_alert_without_a_running_loop_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    alerter = Alerter("http://127.0.0.1:9/hook")
    with caplog.at_level(logging.WARNING, logger="helios.alerts"):
        alerter.alert({"rule": "r"})
    assert "no event loop is running" in caplog.text


def started_only(task_id: str, at: float) -> list[Event]:
    """A task whose process was killed: a start, nothing after it."""
    return [TaskStarted(task_id=task_id, goal="g", timestamp=at, flags={"async_thesis": True})]


async def test_abandoned_tasks_count_as_errors_and_roll_back() -> None:
    store = await store_with(
        *(task(f"ok{n}") for n in range(20)),
        started_only("killed-1", NOW - 2000),  # abandoned at NOW - 1100: in the window
        started_only("killed-2", NOW - 4400),  # started before the window, abandoned in it
        started_only("killed-long-ago", NOW - 4600),  # abandoned before the window
        started_only("still-running", NOW - 100),  # within the timeout: running
    )
    report = await monitor_for(store).check()
    error_rate = report.metrics["error_rate"]
    assert (error_rate.value, error_rate.samples) == (pytest.approx(2 / 22), 22)
    [fired] = report.firing
    assert (fired.rule.metric, fired.action) == ("error_rate", "rolled_back")
    assert await store.flag_overrides() == {"async_thesis": False}


async def test_the_abandonment_timeout_is_the_monitors_setting() -> None:
    store = await store_with(*(task(f"ok{n}") for n in range(20)), started_only("k", NOW - 2000))
    patient = HealthMonitor(
        store, MonitorSettings(), alerter=None, clock=lambda: NOW, abandoned_after_s=3000
    )
    report = await patient.check()
    assert report.metrics["error_rate"].value == 0.0  # still running after 2000 s
    assert report.firing == []


async def test_input_errors_are_not_failures_of_helios() -> None:
    def refused(task_id: str) -> list[Event]:
        """A prompt too long for the model: the task ends, failed on its input."""
        return [
            TaskStarted(task_id=task_id, goal="g", timestamp=NOW - 60),
            ErrorEvent(task_id=task_id, kind="input_error", message="too long", timestamp=NOW - 59),
            TaskFinished(task_id=task_id, success=False, duration_s=1, timestamp=NOW - 59),
        ]

    store = await store_with(*(task(f"ok{n}") for n in range(20)), *map(refused, "abc"))
    report = await monitor_for(store).check()
    assert (report.metrics["error_rate"].value, report.metrics["error_rate"].samples) == (0.0, 23)
    assert report.firing == []
    both = [*refused("d"), ErrorEvent(task_id="d", kind="X", message="m", timestamp=NOW - 58)]
    _, metrics = measure([e for t in ("a", "b") for e in refused(t)] + both)
    assert metrics["error_rate"].value == pytest.approx(1 / 3)  # "d" also failed otherwise


async def test_implausible_events_are_left_out_of_the_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = await store_with(*(task(f"ok{n}") for n in range(20)))
    bad = task("bad", success=False)
    store._events.extend(e.model_copy(update={"duration_s": math.nan}) for e in bad[-1:])
    with caplog.at_level(logging.WARNING, logger="helios.monitor"):
        report = await monitor_for(store).check()
    assert report.metrics["error_rate"].value == 0.0
    assert "skipped 1 ledger event with implausible values" in caplog.text
