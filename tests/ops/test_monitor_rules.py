"""Monitor rules an operator controls: actions (alert, rollback, both), user rules beside
the default rules, the rule settings' checks, and cancelled tasks, never errors."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from helios.config.ops import MonitorRule, MonitorSettings
from helios.config.settings import load_settings
from helios.errors import ConfigError
from helios.ledger.events import ErrorEvent, Event, TaskFinished, TaskStarted
from helios.ledger.memory import MemoryLedgerStore
from helios.ops.alerts import Alerter
from helios.ops.monitor import measure
from tests.ops.conftest import Webhook
from tests.ops.test_monitor import NOW, flag_changes, monitor_for, store_with, task


def cache_alert(**fields: Any) -> MonitorRule:
    """An alert-only rule: a cache hit rate under 20 % over at least 5 tasks."""
    settings: dict[str, Any] = {
        "name": "cache_hit_rate_low",
        "metric": "cache_hit_rate",
        "op": "<",
        "threshold": 0.2,
        "min_samples": 5,
        "actions": ["alert"],
    }
    return MonitorRule(**{**settings, **fields})


async def test_an_alert_only_rule_posts_to_the_webhook_and_rolls_nothing_back(
    webhook: Webhook,
) -> None:
    store = await store_with(*[task(f"t{n}", lookups=(False,)) for n in range(25)])
    alerter = Alerter(webhook.url, backoff_s=0.01)
    monitor = monitor_for(store, alerter, rules=[cache_alert()])
    report = await monitor.check()
    [fired] = report.firing
    assert (fired.rule.label, fired.action) == ("cache_hit_rate_low", "alerted")
    await alerter.wait(5)
    [body] = webhook.bodies
    assert body["name"] == "cache_hit_rate_low"
    assert body["actions"] == ["alert"]
    assert (body["metric"], body["op"], body["value"], body["n"]) == ("cache_hit_rate", "<", 0, 25)
    assert (body["flag"], body["flag_value"], body["action"]) == (None, None, "alerted")
    assert await store.flag_overrides() == {}
    assert await flag_changes(store) == []
    # still firing at the next check: no second alert, still no flag change
    again = await monitor.check()
    assert again.firing[0].action == "alerted"
    await alerter.aclose()
    assert len(webhook.bodies) == 1
    assert await flag_changes(store) == []
    rule = report.to_dict()["rules"][-1]
    assert (rule["name"], rule["actions"], rule["flag"]) == ("cache_hit_rate_low", ["alert"], None)


async def test_user_rules_are_added_to_the_default_rules() -> None:
    settings = MonitorSettings(rules=[cache_alert()])
    assert [rule.label for rule in settings.effective_rules()] == [
        "async_thesis_fallbacks",
        "async_thesis_errors",
        "cache_hit_rate_low",
    ]
    # the default error rule still rolls back beside the user's rule
    failing = [task(f"t{n}", success=n % 2 == 0, lookups=(True,)) for n in range(30)]
    store = await store_with(*failing)
    report = await monitor_for(store, rules=[cache_alert()]).check()
    assert [(o.rule.label, o.action) for o in report.firing] == [
        ("async_thesis_errors", "rolled_back")
    ]
    assert await store.flag_overrides() == {"async_thesis": False}


async def test_a_rule_named_as_a_default_replaces_it() -> None:
    lenient = MonitorRule(
        name="async_thesis_errors", metric="error_rate", threshold=0.5, actions=["alert"]
    )
    settings = MonitorSettings(rules=[lenient])
    rules = settings.effective_rules()
    assert [rule.label for rule in rules] == ["async_thesis_fallbacks", "async_thesis_errors"]
    assert rules[1] is lenient
    store = await store_with(*[task(f"t{n}", success=n % 4 != 0) for n in range(40)])
    report = await monitor_for(store, rules=[lenient]).check()
    assert report.metrics["error_rate"].value == 0.25
    assert report.firing == []  # 25 % is under the replaced rule's 50 %
    assert await store.flag_overrides() == {}


async def test_the_default_rules_can_be_switched_off() -> None:
    settings = MonitorSettings(default_rules=False, rules=[cache_alert()])
    assert [rule.label for rule in settings.effective_rules()] == ["cache_hit_rate_low"]
    assert MonitorSettings(default_rules=False).effective_rules() == []
    store = await store_with(*[task(f"t{n}", success=False, fallback=True) for n in range(30)])
    report = await monitor_for(store, default_rules=False, rules=[cache_alert()]).check()
    assert [o.rule.label for o in report.rules] == ["cache_hit_rate_low"]
    assert report.firing == []
    assert await store.flag_overrides() == {}


async def test_a_rollback_only_rule_changes_the_flag_without_an_alert(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rule = MonitorRule(
        name="slow",
        metric="p95_latency_s",
        threshold=5,
        actions=["rollback"],
        flag="max_passes",
        value=1,
        min_samples=5,
    )
    store = await store_with(*[task(f"t{n}", duration_s=30) for n in range(10)])
    alerter = Alerter(None)
    with caplog.at_level(logging.WARNING, logger="helios.alerts"):
        report = await monitor_for(store, alerter, rules=[rule], default_rules=False).check()
    assert report.firing[0].action == "rolled_back"
    assert await store.flag_overrides() == {"max_passes": 1}
    assert not [r for r in caplog.records if r.name == "helios.alerts"]
    await alerter.aclose()


def test_the_default_schedule_is_hourly_over_the_last_hour() -> None:
    settings = MonitorSettings()
    assert (settings.interval_s, settings.hours) == (3600, 1)
    assert MonitorSettings(interval_s=60).interval_s == 60


def cancelled(task_id: str, kind: str = "cancelled") -> list[Event]:
    """A run stopped by Ctrl-C, as ``helios run`` records it (``interrupted`` before)."""
    return [
        TaskStarted(task_id=task_id, goal="g", timestamp=NOW - 60, flags={"async_thesis": True}),
        ErrorEvent(task_id=task_id, kind=kind, message="", stage="thesis", timestamp=NOW - 50),
        TaskFinished(task_id=task_id, success=False, duration_s=10, timestamp=NOW - 50),
    ]


async def test_cancelled_tasks_are_never_errors() -> None:
    # 2 interrupted runs of 20: once 10 % errors and a rollback of the async thesis
    store = await store_with(
        *(task(f"ok{n}", duration_s=1) for n in range(18)),
        cancelled("c1"),
        cancelled("c2", kind="interrupted"),  # what ledgers before "cancelled" hold
    )
    report = await monitor_for(store).check()
    assert report.tasks == 20
    error_rate = report.metrics["error_rate"]
    assert (error_rate.value, error_rate.samples) == (0.0, 18)
    assert report.metrics["async_fallback_rate"].samples == 18
    assert report.metrics["p95_latency_s"].value == 1.0  # no 10 s cancelled run
    assert report.firing == []
    assert await store.flag_overrides() == {}


async def test_a_task_that_survived_a_retried_call_is_no_error() -> None:
    retried = task("r")
    retried.insert(1, ErrorEvent(task_id="r", kind="provider_retry", message="429", timestamp=NOW))
    _, metrics = measure([*retried, *task("ok")])
    assert metrics["error_rate"].value == 0.0


def test_the_acceptance_rate_is_over_the_tasks_the_gate_judged() -> None:
    def gated(task_id: str, accepted: bool) -> list[Event]:
        events = task(task_id)
        finished = events[-1]
        assert isinstance(finished, TaskFinished)
        update = {"passes": 2, "accepted_pass": 1 if accepted else None}
        return [*events[:-1], finished.model_copy(update=update)]

    events = [*gated("a", True), *gated("b", False), *gated("c", False), *task("no-gate")]
    _, metrics = measure(events)
    accepted = metrics["acceptance_rate"]
    assert (accepted.value, accepted.samples) == (pytest.approx(1 / 3), 3)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"metric": "error_rate", "threshold": 5}, "threshold of error_rate is a rate between 0"),
        (
            {"metric": "cache_hit_rate", "threshold": 0.2, "actions": ["alert"], "flag": "x"},
            "only the rollback action uses flag: add rollback",
        ),
        ({"metric": "error_rate", "threshold": 0.1, "actions": []}, "at least 1 item"),
        ({"metric": "error_rate", "threshold": 0.1, "actions": ["page"]}, "'alert' or 'rollback'"),
        (
            {"metric": "error_rate", "threshold": 0.1, "actions": ["alert", "alert"]},
            "actions lists an action twice",
        ),
        ({"metric": "latency", "threshold": 1}, "monitor.rules.0.metric"),
    ],
)
def test_bad_rules_are_refused_naming_the_key(
    rule: dict[str, Any], message: str, tmp_path: Path
) -> None:
    path = tmp_path / "helios.yaml"
    path.write_text(json.dumps({"monitor": {"rules": [rule]}}), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    text = str(info.value)
    assert text.startswith(f"config file {path}: monitor.rules.0"), text
    assert message in text


def test_two_rules_of_one_name_are_refused(tmp_path: Path) -> None:
    rule = {"metric": "error_rate", "threshold": 0.1}
    path = tmp_path / "helios.yaml"
    path.write_text(json.dumps({"monitor": {"rules": [rule, rule]}}), encoding="utf-8")
    with pytest.raises(
        ConfigError, match=re.escape("rules 0 and 1 are both named 'error_rate > 0.1'")
    ):
        load_settings(path)


async def test_a_rollback_to_a_bad_value_names_the_rule() -> None:
    rule = MonitorRule(name="mine", metric="error_rate", threshold=0.1, flag="max_passes")
    with pytest.raises(ConfigError, match=re.escape("monitor.rules: rule 'mine': flag max_passes")):
        monitor_for(MemoryLedgerStore(), rules=[rule])
