"""Prometheus metrics from a synthetic event stream, and the Grafana dashboard's queries."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helios.config.ops import MonitorRule
from helios.ledger.events import (
    AsyncFallback,
    CacheLookup,
    ErrorEvent,
    Event,
    EvidenceGathered,
    FlagChanged,
    PersonaLLMRun,
    RouteDecision,
    SecondPass,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.sink import FanOut, MemorySink
from helios.ops.metrics import HeliosMetrics
from helios.ops.monitor import HealthReport, Measure, RuleOutcome

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "helios.json"


def run(persona: str, **fields: object) -> PersonaLLMRun:
    values: dict[str, object] = {
        "task_id": "t1",
        "persona": persona,
        "stage": persona,
        "provider": "anthropic",
        "model": "claude-sonnet",
        "streaming": True,
        "ttft_s": 0.3,
        "duration_s": 2.0,
        "perceived_improvement": 0.85,
        "input_tokens": 100,
        "output_tokens": 40,
        "cost_usd": 0.002,
    }
    values.update(fields)
    return PersonaLLMRun.model_validate(values)


def stream() -> list[Event]:
    return [
        TaskStarted(task_id="t1", goal="g", flags={"async_thesis": True, "max_passes": 2}),
        EvidenceGathered(
            task_id="t1",
            documents=1,
            chunks=4,
            passages=2,
            embedded_chunks=4,
            from_cache=False,
            duration_s=0.4,
        ),
        CacheLookup(task_id="t1", persona="thesis", layer="L2", hit=False),
        run("thesis", cache_read_tokens=80),
        CacheLookup(task_id="t1", persona="antithesis", layer="L2", hit=True),
        run(
            "antithesis",
            ttft_s=0.01,
            duration_s=0.02,
            cost_usd=0.0,
            cost_saved_usd=0.003,
            cache_layer="L2",
        ),
        AsyncFallback(task_id="t1", reason="timeout"),
        SecondPass(task_id="t1", pass_number=2, feedback="f"),
        ErrorEvent(task_id="t1", kind="ProviderTimeout", message="slow", stage="synthesis"),
        TaskFinished(task_id="t1", success=False, duration_s=12.5),
        TaskFinished(task_id="t2", success=True, duration_s=3.0),
        FlagChanged(flag="async_thesis", old=None, new=False, reason="r", actor="monitor"),
        RouteDecision(task_id="t1", model="m", tier="fast", score=1.0),
    ]


def samples(metrics: HeliosMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.render().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: HeliosMetrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, frozenset(labels.items()))]


@pytest.fixture
def metrics() -> HeliosMetrics:
    metrics = HeliosMetrics()
    for event in stream():
        metrics.emit(event)
    return metrics


def test_counters_from_events(metrics: HeliosMetrics) -> None:
    labels = {"provider": "anthropic", "model": "claude-sonnet"}
    assert value(metrics, "helios_requests_total", persona="thesis", **labels) == 1
    assert value(metrics, "helios_requests_total", persona="antithesis", **labels) == 1
    assert value(metrics, "helios_tasks_started_total") == 1
    assert value(metrics, "helios_tasks_total", outcome="failure") == 1
    assert value(metrics, "helios_tasks_total", outcome="success") == 1
    assert value(metrics, "helios_cache_hits_total", layer="L2") == 1
    assert value(metrics, "helios_cache_misses_total", layer="L2") == 1
    model = {"model": "claude-sonnet"}
    assert value(metrics, "helios_tokens_total", persona="thesis", kind="input", **model) == 100
    assert value(metrics, "helios_tokens_total", persona="thesis", kind="output", **model) == 40
    assert value(metrics, "helios_tokens_total", persona="thesis", kind="cache_read", **model) == 80
    assert value(metrics, "helios_cost_usd_total", persona="thesis", **model) == 0.002
    saved = value(metrics, "helios_cost_saved_usd_total", persona="antithesis", layer="L2", **model)
    assert saved == 0.003
    assert value(metrics, "helios_async_fallbacks_total") == 1
    assert value(metrics, "helios_second_passes_total") == 1
    assert value(metrics, "helios_errors_total", kind="ProviderTimeout", stage="synthesis") == 1
    assert value(metrics, "helios_flag_changes_total", flag="async_thesis") == 1


def test_histograms_from_events(metrics: HeliosMetrics) -> None:
    assert value(metrics, "helios_stage_duration_seconds_count", stage="thesis") == 1
    assert value(metrics, "helios_stage_duration_seconds_sum", stage="thesis") == 2.0
    assert value(metrics, "helios_stage_duration_seconds_count", stage="evidence") == 1
    assert value(metrics, "helios_stage_duration_seconds_bucket", stage="thesis", le="2.5") == 1
    assert value(metrics, "helios_stage_duration_seconds_bucket", stage="thesis", le="1.0") == 0
    assert value(metrics, "helios_ttft_seconds_bucket", persona="antithesis", le="0.01") == 1
    assert value(metrics, "helios_ttft_seconds_sum", persona="thesis") == 0.3
    assert value(metrics, "helios_task_duration_seconds_count") == 2


def test_flag_gauges(metrics: HeliosMetrics) -> None:
    # The task stamped async_thesis on; the later flag_changed turned it off.
    assert value(metrics, "helios_flag_value", flag="async_thesis") == 0
    assert value(metrics, "helios_flag_value", flag="max_passes") == 2
    metrics.set_flags({"async_thesis": True, "mode": "text"})
    assert value(metrics, "helios_flag_value", flag="async_thesis") == 1
    assert ("helios_flag_value", frozenset({("flag", "mode")})) not in samples(metrics)


def test_ledger_lag_and_health_gauges() -> None:
    metrics = HeliosMetrics()
    metrics.set_ledger_lag(1.5, 42)
    rule = MonitorRule(metric="error_rate", threshold=0.05)
    report = HealthReport(
        checked_at=0.0,
        window_hours=1.0,
        tasks=30,
        metrics={"error_rate": Measure(0.2, 30), "cache_hit_rate": Measure(None, 0)},
        rules=[RuleOutcome(rule, 0.2, 30, True, "rolled_back")],
    )
    metrics.observe_health(report)
    assert value(metrics, "helios_ledger_write_lag_seconds") == 1.5
    assert value(metrics, "helios_ledger_pending_events") == 42
    assert value(metrics, "helios_health_value", metric="error_rate") == 0.2
    assert value(metrics, "helios_health_samples", metric="cache_hit_rate") == 0
    assert (
        value(metrics, "helios_health_rule_firing", metric="error_rate", flag="async_thesis") == 1
    )


def test_registries_are_separate_and_the_output_is_text_format() -> None:
    first, second = HeliosMetrics(), HeliosMetrics()
    first.emit(TaskStarted(task_id="t", goal="g"))
    assert value(first, "helios_tasks_started_total") == 1
    assert value(second, "helios_tasks_started_total") == 0
    assert first.content_type.startswith("text/plain; version=0.0.4")
    assert b"# TYPE helios_tasks_started_total counter" in first.render()


def test_it_is_an_event_sink() -> None:
    metrics, memory = HeliosMetrics(), MemorySink()
    FanOut([memory, metrics]).emit(TaskStarted(task_id="t", goal="g"))
    assert value(metrics, "helios_tasks_started_total") == 1


def _metric_names(metrics: HeliosMetrics) -> set[str]:
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in suffixes[family.type]
    }


def _expressions(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for child in node.values() for e in _expressions(child)]
    if isinstance(node, list):
        return [e for child in node for e in _expressions(child)]
    return []


def test_the_dashboard_queries_only_metrics_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = _expressions(dashboard)
    assert len(expressions) >= 15
    queried = {name for expr in expressions for name in re.findall(r"\bhelios_\w+", expr)}
    known = _metric_names(HeliosMetrics())
    assert queried - known == set()
    # Every family is charted somewhere.
    families = {f.name for f in HeliosMetrics().registry.collect()}
    charted = {f for f in families if any(name.startswith(f) for name in queried)}
    assert families - charted == set()
    assert dashboard["title"] and dashboard["panels"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_a_task_without_an_end_is_running_then_abandoned() -> None:
    clock = [1_700_000_000.0]
    metrics = HeliosMetrics(abandoned_after_s=60, clock=lambda: clock[0])
    for task_id in ("killed", "slow", "quick"):
        metrics.emit(TaskStarted(task_id=task_id, goal="g", timestamp=clock[0]))
    metrics.emit(TaskFinished(task_id="quick", success=True, duration_s=1, timestamp=clock[0]))
    assert value(metrics, "helios_tasks_running") == 2
    assert ("helios_tasks_total", frozenset({("outcome", "abandoned")})) not in samples(metrics)
    clock[0] += 61
    assert value(metrics, "helios_tasks_total", outcome="abandoned") == 2
    assert value(metrics, "helios_tasks_running") == 0
    # an end that arrives after all is not counted a second time
    metrics.emit(TaskFinished(task_id="slow", success=True, duration_s=70, timestamp=clock[0]))
    assert value(metrics, "helios_tasks_total", outcome="success") == 1
    assert value(metrics, "helios_tasks_total", outcome="abandoned") == 2
    assert metrics.sweep() == 0


def test_implausible_events_update_nothing_and_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = HeliosMetrics()
    started = TaskStarted(task_id="t", goal="g")
    run = next(e for e in stream() if isinstance(e, PersonaLLMRun))
    with caplog.at_level("WARNING", logger="helios.ops.metrics"):
        metrics.emit(started.model_copy(update={"timestamp": 1.7e12}))  # milliseconds
        metrics.emit(run.model_copy(update={"timestamp": started.timestamp, "cost_usd": math.nan}))
    assert value(metrics, "helios_ledger_events_skipped_total") == 2
    assert value(metrics, "helios_tasks_started_total") == 0
    assert value(metrics, "helios_tasks_running") == 0
    assert not [name for name, _ in samples(metrics) if name == "helios_requests_total"]
    assert "skipped task_started event of task 't': timestamp:" in caplog.text
    metrics.emit(started)  # and plausible ones still count
    assert value(metrics, "helios_tasks_started_total") == 1


def test_a_negative_saving_leaves_the_saved_counter_alone() -> None:
    metrics = HeliosMetrics()
    run = next(e for e in stream() if isinstance(e, PersonaLLMRun) and e.cost_saved_usd)
    metrics.emit(run.model_copy(update={"cost_saved_usd": -0.0008}))  # a cache write
    assert (
        value(
            metrics,
            "helios_requests_total",
            persona=run.persona,
            provider=run.provider,
            model=run.model,
        )
        == 1
    )
    assert not [name for name, _ in samples(metrics) if name == "helios_cost_saved_usd_total"]
