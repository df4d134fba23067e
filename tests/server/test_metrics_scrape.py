"""``/metrics`` of a running ``helios serve`` adds up: gateway calls through the app and
tasks seeded in its ledger, scraped with an admin key and parsed with prometheus_client's
parser; no family twice, and every number equal to what the ledger (or the governor) says.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from helios.call_events import RETRY_KIND
from helios.config.settings import Settings
from helios.ledger.events import (
    INPUT_ERROR,
    INTERRUPTED,
    AsyncFallback,
    CacheLookup,
    ErrorEvent,
    Event,
    GateVerdict,
    GatewayRequest,
    PersonaLLMRun,
    SecondPass,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.memory import MemoryLedgerStore
from helios.server import create_app
from helios.sim import SimServer
from tests.ops.metric_families import exported_families
from tests.server.cache_fixtures import client_for, create_key

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
ABANDONED_AFTER_S = 600.0
BUDGETS = [
    {"account": "team-usd", "unit": "usd", "windows": [{"name": "5h", "limit": 50}]},
    {
        "account": "team-tokens",
        "unit": "tokens",
        "windows": [
            {"name": "5h", "limit": 5_000_000},
            {"name": "week", "kind": "sliding", "length_s": 604_800, "limit": 50_000_000},
        ],
    },
    {"account": "team-requests", "unit": "requests", "windows": [{"name": "1m", "limit": 1000}]},
]


def settings(keys: Path, sim_url: str) -> Settings:
    return Settings.model_validate(
        {
            "keys": {"path": str(keys)},
            "ledger": {"abandoned_after_s": ABANDONED_AFTER_S},
            "cache": {"backend": "memory", "semantic": {"enabled": False}},
            "default_model": "sonnet",
            "tiers": {"strong": "opus", "fast": "sonnet", "local": "openai:gpt-5.4-mini"},
            "providers": {
                "openai": {"base_url": sim_url + "/v1", "api_key": "sim", "max_retries": 0},
                "anthropic": {"base_url": sim_url, "api_key": "sim", "max_retries": 0},
            },
            "governor": {"enabled": True, "backend": "memory", "budgets": BUDGETS},
        }
    )


def seeded_tasks(now: float) -> list[Event]:
    """Tasks as pipelines record them: accepted on a second pass, succeeded but never
    passing the gate, cancelled, failed, failed on its input, abandoned."""

    def call(task: str, persona: str, **fields: Any) -> PersonaLLMRun:
        values: dict[str, Any] = {
            "task_id": task,
            "persona": persona,
            "stage": persona,
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "streaming": True,
            "ttft_s": 0.4,
            "duration_s": 3.0,
            "perceived_improvement": 0.87,
            "input_tokens": 500,
            "output_tokens": 200,
            "cost_usd": 0.0045,
            "timestamp": now,
        }
        return PersonaLLMRun.model_validate({**values, **fields})

    def verdict(task: str, number: int, passed: bool) -> GateVerdict:
        return GateVerdict(
            task_id=task,
            pass_number=number,
            passed=passed,
            evidence_ok=True,
            judge_pass=passed,
            judge_score=0.9 if passed else 0.3,
            judge_valid=True,
            timestamp=now,
        )

    def start(task: str, *, at: float = now, async_thesis: bool = False) -> TaskStarted:
        return TaskStarted(
            task_id=task, goal="g", flags={"async_thesis": async_thesis}, timestamp=at
        )

    def end(task: str, success: bool, **fields: Any) -> TaskFinished:
        return TaskFinished(task_id=task, success=success, duration_s=8.0, timestamp=now, **fields)

    def error(task: str, kind: str, stage: str = "synthesis") -> ErrorEvent:
        return ErrorEvent(task_id=task, kind=kind, message=kind, stage=stage, timestamp=now)

    def lookup(task: str, persona: str, hit: bool, layer: str = "L2") -> CacheLookup:
        return CacheLookup(task_id=task, persona=persona, layer=layer, hit=hit, timestamp=now)

    return [
        start("accepted", async_thesis=True),
        lookup("accepted", "thesis", False),
        lookup("accepted", "thesis", False, layer="L3"),
        call("accepted", "thesis"),
        lookup("accepted", "antithesis", True),
        call(
            "accepted",
            "antithesis",
            ttft_s=0.003,
            duration_s=0.004,
            cost_usd=0.0,
            cost_saved_usd=0.0051,
            time_saved_s=2.5,
            cache_layer="L2",
        ),
        AsyncFallback(task_id="accepted", reason="thesis timed out", timestamp=now),
        error("accepted", RETRY_KIND, stage="synthesis"),
        call("accepted", "synthesis", cache_read_tokens=300, cost_saved_usd=0.0008),
        verdict("accepted", 1, False),
        SecondPass(task_id="accepted", pass_number=2, feedback="cite [E1]", timestamp=now),
        verdict("accepted", 2, True),
        end("accepted", True, accepted_pass=2, passes=2),
        start("never-passed"),
        lookup("never-passed", "thesis", True),
        verdict("never-passed", 1, False),
        end("never-passed", True, passes=1),
        start("ctrl-c", async_thesis=True),
        error("ctrl-c", INTERRUPTED, stage="antithesis"),
        end("ctrl-c", False),
        start("broken"),
        error("broken", "ProviderError"),
        end("broken", False),
        start("too-long"),
        error("too-long", INPUT_ERROR, stage="thesis"),
        end("too-long", False),
        start("killed", at=now - ABANDONED_AFTER_S - 60),
        GatewayRequest(
            task_id="req_elsewhere",
            endpoint="/v1/messages",
            tenant="globex",
            key_id="0123456789ab",
            model="sonnet",
            status=429,
            duration_s=0.002,
            error="rate limited",
            timestamp=now,
        ),
    ]


def expected_from(events: Sequence[Event], now: float) -> Samples:
    """What the ledger says, by the rules docs/operations.md states, as samples."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = defaultdict(float)

    def add(name: str, amount: float = 1.0, **labels: str) -> None:
        out[(name, frozenset(labels.items()))] += amount

    errors: dict[str, set[str]] = defaultdict(set)
    passed: set[str] = set()
    started: dict[str, float] = {}
    finished: set[str] = set()
    for event in events:
        match event:
            case TaskStarted():
                add("helios_tasks_started_total")
                started[event.task_id] = event.timestamp
                if event.flags.get("async_thesis") is True:
                    add("helios_async_theses_total")
            case ErrorEvent():
                add("helios_errors_total", kind=event.kind, stage=event.stage or "")
                if event.kind != RETRY_KIND:
                    errors[event.task_id].add(event.kind)
            case GateVerdict():
                add("helios_gate_verdicts_total", result="passed" if event.passed else "failed")
                if event.passed:
                    passed.add(event.task_id)
            case TaskFinished():
                finished.add(event.task_id)
                kinds = errors[event.task_id]
                if event.success:
                    status = "succeeded"
                    if event.task_id in passed:
                        add("helios_tasks_accepted_total")
                elif INTERRUPTED in kinds:
                    status = "cancelled"
                elif kinds == {INPUT_ERROR}:
                    status = "invalid_input"
                else:
                    status = "failed"
                add("helios_tasks_ended_total", status=status)
                add("helios_task_duration_seconds_count")
            case CacheLookup():
                result = "hit" if event.hit else "miss"
                add(
                    "helios_cache_lookups_total",
                    layer=event.layer,
                    persona=event.persona,
                    result=result,
                )
            case PersonaLLMRun():
                source = event.cache_layer or "provider"
                persona, model = event.persona, event.model
                labels = {"persona": persona, "provider": event.provider, "model": model}
                add("helios_llm_calls_total", source=source, **labels)
                add("helios_ttft_seconds_count", persona=persona, source=source)
                add("helios_ttft_seconds_sum", event.ttft_s, persona=persona, source=source)
                add("helios_llm_call_duration_seconds_count", persona=persona, source=source)
                if event.cost_usd:
                    add("helios_cost_usd_total", event.cost_usd, persona=persona, model=model)
                if event.cost_saved_usd and event.cost_saved_usd > 0:
                    layer = event.cache_layer or "L1"
                    saved = {"persona": persona, "model": model, "layer": layer}
                    add("helios_cost_saved_usd_total", event.cost_saved_usd, **saved)
                if event.cache_layer and event.time_saved_s:
                    saved = {"persona": persona, "layer": event.cache_layer}
                    add("helios_time_saved_seconds_total", event.time_saved_s, **saved)
                if event.input_tokens:
                    labels = {"persona": persona, "model": model, "kind": "input"}
                    add("helios_tokens_total", event.input_tokens, **labels)
            case GatewayRequest():
                labels = {
                    "endpoint": event.endpoint,
                    "tenant": event.tenant,
                    "key_id": event.key_id or "-",
                    "model": event.model,
                    "status": str(event.status),
                }
                add("helios_gateway_requests_total", **labels)
                add("helios_gateway_request_duration_seconds_count", endpoint=event.endpoint)
            case AsyncFallback():
                add("helios_async_fallbacks_total")
            case SecondPass():
                add("helios_second_passes_total")
            case _:
                pass
    abandoned = [
        task
        for task, at in started.items()
        if task not in finished and at < now - ABANDONED_AFTER_S
    ]
    add("helios_tasks_ended_total", len(abandoned), status="abandoned")
    add("helios_tasks_running", len(started) - len(finished) - len(abandoned))
    return dict(out)


def parse(text: str) -> tuple[list[str], Samples]:
    families = list(text_string_to_metric_families(text))
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
    }
    return [family.name for family in families], samples


def differences(expected: Samples, scraped: Samples) -> list[str]:
    return [
        f"{name}{dict(labels)}: ledger {value}, /metrics {scraped.get((name, labels))}"
        for (name, labels), value in sorted(expected.items(), key=str)
        if scraped.get((name, labels)) != pytest.approx(value, rel=1e-9, abs=1e-12)
    ]


async def test_metrics_add_up_to_the_ledger(tmp_path: Path) -> None:
    keys = tmp_path / "keys.sqlite3"
    tenant_record, tenant = await create_key(keys, "acme")
    _, admin = await create_key(keys, "ops", admin=True)
    store = MemoryLedgerStore()
    await store.append([TaskStarted(task_id="before-the-server", goal="g")])  # not counted
    start = await store.last_sequence()
    with SimServer() as sim:
        app = create_app(settings(keys, sim.base_url), store=store, metrics_poll_s=0.01)
        async with client_for(app) as client:
            as_tenant = {"Authorization": f"Bearer {tenant}"}
            body = {"model": "sonnet", "messages": [{"role": "user", "content": "Hello?"}]}
            for _ in range(2):  # a provider call, then the same request from the L2 cache
                answer = await client.post("/v1/chat/completions", json=body, headers=as_tenant)
                assert answer.status_code == 200, answer.text
            refused = await client.post(
                "/v1/chat/completions", json={**body, "model": "nosuch:model"}, headers=as_tenant
            )
            assert refused.status_code >= 400
            await app.state.helios.runtime.flush()  # the gateway calls' events are written
            await store.append(seeded_tasks(time.time()))
            forbidden = await client.get("/metrics", headers=as_tenant)
            assert forbidden.status_code == 403
            text, scraped, expected = await scrape_until_it_adds_up(client, store, start, admin)
            governor = app.state.helios.runtime.engine.governor
            windows = await governor.status()

    names, _ = parse(text)
    assert len(names) == len(set(names)), "a metric family is exported twice"
    type_lines = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(type_lines) == len(set(type_lines)) == len(names)
    # prometheus_client writes each counter's and histogram's creation time as a gauge family
    # of its own (``..._created``) in this text format
    created = {name for name in names if name.endswith("_created")}
    assert set(names) - created == {family.name for family in exported_families()}
    assert differences(expected, scraped) == []
    # the gateway calls are in it: by the tenant's key id, a hit and a refusal among them
    gateway = {
        dict(labels)["status"]: v
        for (name, labels), v in scraped.items()
        if name == "helios_gateway_requests_total" and ("key_id", tenant_record.id) in labels
    }
    assert gateway["200"] == 2 and sum(gateway.values()) == 3
    assert (
        scraped[
            (
                "helios_cache_lookups_total",
                frozenset({("layer", "L2"), ("persona", "-"), ("result", "hit")}),
            )
        ]
        == 1
    )
    assert (
        scraped[
            (
                "helios_gateway_overhead_seconds_count",
                frozenset({("endpoint", "/v1/chat/completions")}),
            )
        ]
        == 2
    )
    assert tenant not in text and admin not in text
    # budgets: as the governor tells them, in each budget's unit
    by_unit = {budget["account"]: budget["unit"] for budget in BUDGETS}
    assert len(windows) == 4
    for window in windows:
        labels = frozenset({("account", window.account), ("window", window.window)})
        unit = by_unit[window.account]
        assert scraped[(f"helios_budget_limit_{unit}", labels)] == window.limit
        assert scraped[(f"helios_budget_used_{unit}", labels)] == pytest.approx(window.used)
        assert scraped[(f"helios_budget_remaining_{unit}", labels)] == pytest.approx(
            window.remaining
        )
        ratio = (window.used + window.reserved) / window.limit
        assert scraped[("helios_budget_used_ratio", labels)] == pytest.approx(ratio)
    requests = frozenset({("account", "team-requests"), ("window", "1m")})
    assert scraped[("helios_budget_used_requests", requests)] == 1  # the cache hit is free
    # read from the server's ledger writer at the scrape: everything was written by then
    assert scraped[("helios_ledger_pending_events", frozenset())] == 0


async def scrape_until_it_adds_up(
    client: httpx2.AsyncClient, store: MemoryLedgerStore, start: int, admin: str
) -> tuple[str, Samples, Samples]:
    """Scrape until the server's tail has read every event recorded (fails after ~10 s)."""
    for _ in range(500):
        events = [event for _, event in await store.events_after(start, limit=100_000)]
        expected = expected_from(events, time.time())
        answer = await client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
        assert answer.status_code == 200, answer.text
        _, scraped = parse(answer.text)
        if not differences(expected, scraped):
            return answer.text, scraped, expected
        await asyncio.sleep(0.02)
    return answer.text, scraped, expected
