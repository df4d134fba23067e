"""The budget windows on ``/metrics``: the governor's status at each refresh, in each
budget's unit; left out (not stale) while the governor's state store cannot be read."""

from __future__ import annotations

import socket

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from helios.catalog import Catalog
from helios.config.governor import GovernorSettings
from helios.governance.governor import Governor
from helios.messages import CallContext, Message, Request, SamplingParams, Usage
from helios.server.budget_metrics import BudgetCollector

BUDGETS = [
    {"account": "dollars", "unit": "usd", "windows": [{"name": "5h", "limit": 20}]},
    {"account": "calls", "unit": "requests", "windows": [{"name": "1m", "limit": 10}]},
]


def samples(registry: CollectorRegistry) -> dict[tuple[str, str, str], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, sample.labels["account"], sample.labels["window"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once it is closed


async def test_windows_follow_the_governor_at_each_refresh() -> None:
    settings = GovernorSettings.model_validate({"backend": "memory", "budgets": BUDGETS})
    governor = Governor.from_settings(settings, Catalog.load())
    collector = BudgetCollector(lambda: governor)
    registry = CollectorRegistry()
    registry.register(collector)
    await collector.refresh()
    assert samples(registry)[("helios_budget_remaining_requests", "calls", "1m")] == 10
    assert samples(registry)[("helios_budget_limit_usd", "dollars", "5h")] == 20

    request = Request(
        model="anthropic:claude-sonnet-5-5",
        messages=(Message(role="user", content="Hello?"),),
        params=SamplingParams(max_tokens=100),
        context=CallContext(task_id="t"),
    )
    held = await governor.reserve(request, "anthropic", "claude-sonnet-5-5")
    await collector.refresh()
    reserved = samples(registry)
    assert reserved[("helios_budget_reserved_requests", "calls", "1m")] == 1
    assert reserved[("helios_budget_used_ratio", "calls", "1m")] == pytest.approx(0.1)
    await governor.commit(held, Usage(input_tokens=1000, output_tokens=100))
    await collector.refresh()
    after = samples(registry)
    windows = {(w.account, w.window): w for w in await governor.status()}
    for account, window, unit in (("dollars", "5h", "usd"), ("calls", "1m", "requests")):
        status = windows[(account, window)]
        for field in ("limit", "used", "reserved", "remaining"):
            name = f"helios_budget_{field}_{unit}"
            assert after[(name, account, window)] == pytest.approx(getattr(status, field))
    assert after[("helios_budget_used_requests", "calls", "1m")] == 1
    assert after[("helios_budget_used_usd", "dollars", "5h")] > 0
    # no family for a unit no budget counts in
    assert not [key for key in after if key[0].endswith("_tokens")]
    await governor.close()


async def test_an_unreadable_state_store_leaves_the_windows_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = GovernorSettings.model_validate(
        {
            "backend": "redis",
            "redis_url": f"redis://127.0.0.1:{closed_port()}/0",
            "budgets": BUDGETS,
        }
    )
    governor = Governor.from_settings(settings, Catalog.load())
    collector = BudgetCollector(lambda: governor)
    registry = CollectorRegistry()
    registry.register(collector)
    with caplog.at_level("WARNING", logger="helios.server.budget_metrics"):
        await collector.refresh()
    assert samples(registry) == {}
    assert "budget windows left out of this scrape" in caplog.text
    await governor.close()


async def test_no_governor_no_windows() -> None:
    collector = BudgetCollector(lambda: None)
    registry = CollectorRegistry()
    registry.register(collector)
    await collector.refresh()
    assert samples(registry) == {}
