"""Prometheus metrics from a synthetic event stream; the Grafana dashboard's queries and the
Prometheus alert rules name only metrics that exist."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from helios.call_events import RETRY_KIND
from helios.config.ops import MonitorRule
from helios.ledger.events import (
    INPUT_ERROR,
    INTERRUPTED,
    AsyncFallback,
    CacheLookup,
    ErrorEvent,
    Event,
    EvidenceGathered,
    FlagChanged,
    GateVerdict,
    GatewayRequest,
    PersonaLLMRun,
    RouteDecision,
    SecondPass,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.sink import FanOut, MemorySink
from helios.ops.metrics import MAX_GATEWAY_MODELS, OTHER_MODEL, HeliosMetrics
from helios.ops.monitor import HealthReport, Measure, RuleOutcome
from tests.ops.metric_families import exported_families, sample_names

DEPLOY = Path(__file__).parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "helios.json"
ALERTS = DEPLOY / "prometheus" / "helios-alerts.yml"
METRIC_NAME = re.compile(r"\bhelios_[a-z0-9_]+")


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
            time_saved_s=1.5,
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
    assert value(metrics, "helios_llm_calls_total", persona="thesis", source="provider", **labels)
    assert value(metrics, "helios_llm_calls_total", persona="antithesis", source="L2", **labels)
    assert value(metrics, "helios_tasks_started_total") == 1
    assert value(metrics, "helios_async_theses_total") == 1
    assert value(metrics, "helios_tasks_ended_total", status="failed") == 1
    assert value(metrics, "helios_tasks_ended_total", status="succeeded") == 1
    lookups = {"layer": "L2", "persona": "antithesis"}
    assert value(metrics, "helios_cache_lookups_total", result="hit", **lookups) == 1
    lookups = {"layer": "L2", "persona": "thesis"}
    assert value(metrics, "helios_cache_lookups_total", result="miss", **lookups) == 1
    model = {"model": "claude-sonnet"}
    assert value(metrics, "helios_tokens_total", persona="thesis", kind="input", **model) == 100
    assert value(metrics, "helios_tokens_total", persona="thesis", kind="output", **model) == 40
    assert value(metrics, "helios_tokens_total", persona="thesis", kind="cache_read", **model) == 80
    assert value(metrics, "helios_cost_usd_total", persona="thesis", **model) == 0.002
    saved = value(metrics, "helios_cost_saved_usd_total", persona="antithesis", layer="L2", **model)
    assert saved == 0.003
    time_saved = value(metrics, "helios_time_saved_seconds_total", persona="antithesis", layer="L2")
    assert time_saved == 1.5
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
    cached, provided = {"persona": "antithesis", "source": "L2"}, {"source": "provider"}
    assert value(metrics, "helios_ttft_seconds_bucket", le="0.01", **cached) == 1
    assert value(metrics, "helios_ttft_seconds_bucket", le="0.005", **cached) == 0
    assert value(metrics, "helios_ttft_seconds_sum", persona="thesis", **provided) == 0.3
    assert value(metrics, "helios_llm_call_duration_seconds_sum", **cached) == 0.02
    assert value(metrics, "helios_llm_call_duration_seconds_count", persona="thesis", **provided)
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
        value(metrics, "helios_health_rule_firing", metric="error_rate", rule="error_rate > 0.05")
        == 1
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
    queried = {name for expr in expressions for name in METRIC_NAME.findall(expr)}
    families = exported_families()
    assert queried - sample_names(families) == set()
    # Every family is charted somewhere.
    charted = {f.name for f in families if any(name.startswith(f.name) for name in queried)}
    assert {f.name for f in families} - charted == set()
    assert dashboard["title"] and dashboard["panels"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_the_alert_rules_use_only_metrics_that_exist() -> None:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    exported = sample_names(exported_families())
    alerts = {rule["alert"] for rule in rules}
    # what the health monitor watches, and the ledger's own lag
    for expected in ("ErrorRate", "AsyncFallback", "CacheHitRate", "TimeToFirstToken"):
        assert any(expected in alert for alert in alerts), expected
    assert {"HeliosTasksAbandoned", "HeliosLedgerLagging"} <= alerts
    for rule in rules:
        names = set(METRIC_NAME.findall(rule["expr"]))
        assert names, rule["alert"]
        assert names - exported == set(), rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"]
        for text in (rule["annotations"]["summary"], rule["annotations"]["description"]):
            # label references name labels the expression keeps
            for label in re.findall(r"\$labels\.(\w+)", text):
                assert re.search(rf"by \([^)]*\b{label}\b", rule["expr"]), (rule["alert"], label)
    assert len(alerts) == len(rules)


def test_a_cancelled_task_is_no_failure_and_an_input_error_is_the_callers() -> None:
    metrics = HeliosMetrics()
    for task_id in ("stopped", "too-long", "broken", "retried", "gated", "ungated"):
        metrics.emit(TaskStarted(task_id=task_id, goal="g"))
    metrics.emit(ErrorEvent(task_id="stopped", kind=INTERRUPTED, message="KeyboardInterrupt"))
    metrics.emit(ErrorEvent(task_id="too-long", kind=INPUT_ERROR, message="prompt too long"))
    metrics.emit(ErrorEvent(task_id="broken", kind=INPUT_ERROR, message="prompt too long"))
    metrics.emit(ErrorEvent(task_id="broken", kind="ProviderError", message="down"))
    metrics.emit(ErrorEvent(task_id="retried", kind=RETRY_KIND, message="a 429, tried again"))
    metrics.emit(verdict("gated", passed=False))
    metrics.emit(verdict("gated", passed=True, pass_number=2))
    metrics.emit(verdict("ungated", passed=False))
    for task_id in ("stopped", "too-long", "broken", "retried"):
        metrics.emit(TaskFinished(task_id=task_id, success=False, duration_s=1))
    metrics.emit(TaskFinished(task_id="gated", success=True, duration_s=1, accepted_pass=2))
    metrics.emit(TaskFinished(task_id="ungated", success=True, duration_s=1))
    assert value(metrics, "helios_tasks_ended_total", status="cancelled") == 1
    assert value(metrics, "helios_tasks_ended_total", status="invalid_input") == 1
    assert value(metrics, "helios_tasks_ended_total", status="failed") == 2  # broken, retried
    assert value(metrics, "helios_tasks_ended_total", status="succeeded") == 2
    assert value(metrics, "helios_tasks_accepted_total") == 1
    assert value(metrics, "helios_gate_verdicts_total", result="passed") == 1
    assert value(metrics, "helios_gate_verdicts_total", result="failed") == 2
    assert value(metrics, "helios_tasks_running") == 0


def test_gateway_requests_by_key_and_the_gateways_overhead() -> None:
    metrics = HeliosMetrics()
    answered = run("-", task_id="req_1", duration_s=0.5, stage="call")
    metrics.emit(answered)
    metrics.emit(gateway("req_1", key_id="k1", status=200, duration_s=0.5125))
    hit = run("-", task_id="req_2", duration_s=0.002, cache_layer="L2", stage="call")
    metrics.emit(hit)
    metrics.emit(gateway("req_2", key_id="k1", status=200, duration_s=0.004))
    metrics.emit(gateway("req_3", key_id=None, status=429, duration_s=0.001))  # refused
    ok = {"endpoint": "/v1/chat/completions", "tenant": "acme", "model": "auto"}
    assert value(metrics, "helios_gateway_requests_total", key_id="k1", status="200", **ok) == 2
    assert value(metrics, "helios_gateway_requests_total", key_id="-", status="429", **ok) == 1
    endpoint = {"endpoint": "/v1/chat/completions"}
    assert value(metrics, "helios_gateway_request_duration_seconds_count", **endpoint) == 3
    # overhead: 12.5 ms beside the provider's 500 ms; all 4 ms of the cache hit; none
    # observed for the refusal, which no call answered
    assert value(metrics, "helios_gateway_overhead_seconds_count", **endpoint) == 2
    overhead = value(metrics, "helios_gateway_overhead_seconds_sum", **endpoint)
    assert overhead == pytest.approx(0.0125 + 0.004)
    assert value(metrics, "helios_gateway_overhead_seconds_bucket", le="0.005", **endpoint) == 1
    assert value(metrics, "helios_gateway_overhead_seconds_bucket", le="0.025", **endpoint) == 2


def test_the_models_clients_name_are_bounded_as_labels() -> None:
    metrics = HeliosMetrics()
    for n in range(MAX_GATEWAY_MODELS + 5):
        metrics.emit(gateway(f"req_{n}", key_id="k1", status=404, duration_s=0.001, model=f"m{n}"))
    metrics.emit(gateway("req_again", key_id="k1", status=404, duration_s=0.001, model="m0"))
    counted = {
        dict(labels)["model"]: count
        for (name, labels), count in samples(metrics).items()
        if name == "helios_gateway_requests_total"
    }
    assert len(counted) == MAX_GATEWAY_MODELS + 1
    assert counted[OTHER_MODEL] == 5 and counted["m0"] == 2
    assert sum(counted.values()) == MAX_GATEWAY_MODELS + 6


def verdict(task_id: str, *, passed: bool, pass_number: int = 1) -> GateVerdict:
    return GateVerdict(
        task_id=task_id,
        pass_number=pass_number,
        passed=passed,
        evidence_ok=passed,
        judge_pass=passed,
        judge_score=0.9 if passed else 0.2,
        judge_valid=True,
    )


def gateway(
    task_id: str, *, key_id: str | None, status: int, duration_s: float, model: str = "auto"
) -> GatewayRequest:
    return GatewayRequest(
        task_id=task_id,
        endpoint="/v1/chat/completions",
        tenant="acme",
        key_id=key_id,
        model=model,
        status=status,
        duration_s=duration_s,
    )


def test_a_task_without_an_end_is_running_then_abandoned() -> None:
    clock = [1_700_000_000.0]
    metrics = HeliosMetrics(abandoned_after_s=60, clock=lambda: clock[0])
    for task_id in ("killed", "slow", "quick"):
        metrics.emit(TaskStarted(task_id=task_id, goal="g", timestamp=clock[0]))
    metrics.emit(TaskFinished(task_id="quick", success=True, duration_s=1, timestamp=clock[0]))
    assert value(metrics, "helios_tasks_running") == 2
    assert value(metrics, "helios_tasks_ended_total", status="abandoned") == 0
    clock[0] += 61
    assert value(metrics, "helios_tasks_ended_total", status="abandoned") == 2
    assert value(metrics, "helios_tasks_running") == 0
    # an end that arrives after all is not counted a second time
    metrics.emit(TaskFinished(task_id="slow", success=True, duration_s=70, timestamp=clock[0]))
    assert value(metrics, "helios_tasks_ended_total", status="succeeded") == 1
    assert value(metrics, "helios_tasks_ended_total", status="abandoned") == 2
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
    assert not [name for name, _ in samples(metrics) if name == "helios_llm_calls_total"]
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
            "helios_llm_calls_total",
            persona=run.persona,
            provider=run.provider,
            model=run.model,
            source="L2",
        )
        == 1
    )
    assert not [name for name, _ in samples(metrics) if name == "helios_cost_saved_usd_total"]
