"""An API key's budget and rate limit, held by the governor on every engine call made with
the key: reserved before, reconciled after, refused with the window and its reset time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helios.config.settings import Settings
from helios.errors import BudgetExceeded
from helios.keys.model import NewKey, parse_budget
from helios.ledger.events import GovernorDecision
from helios.ledger.sink import MemorySink
from helios.messages import Request, SamplingParams
from helios.providers.function import FunctionProvider
from helios.runtime import Runtime

SONNET = ("anthropic", "claude-sonnet-5-5")  # 2 usd per million input tokens, 10 output


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings.model_validate(
        {
            "ledger": {"enabled": False},
            "cache": {"enabled": False},
            "keys": {"path": str(tmp_path / "keys.sqlite3")},
            "governor": {"path": str(tmp_path / "governor.sqlite3")},
            **values,
        }
    )


def sonnet(reply: str = "fine, thanks") -> FunctionProvider:
    return FunctionProvider(lambda request: reply, name=SONNET[0], model=SONNET[1])


def call(key_id: str | None, max_tokens: int = 100) -> Request:
    request = Request.of(
        "hello there", model="sonnet", params=SamplingParams(max_tokens=max_tokens)
    )
    return request.with_context(tenant="acme", key_id=key_id)


async def test_a_spent_usd_budget_refuses_the_next_call_naming_the_window(
    tmp_path: Path,
) -> None:
    sink = MemorySink()
    double = sonnet("word " * 50_000)  # 50,000 output tokens: 0.50 usd
    config = settings(tmp_path)
    async with Runtime.open(config, sink=sink, providers=[double], api_keys=True) as runtime:
        key, _ = await runtime.keys.create(NewKey(tenant="acme", budget=parse_budget("1usd/5h")))
        started = time.time()
        await runtime.engine.complete(call(key.id, max_tokens=90_000))  # reserves 0.90 usd
        with pytest.raises(BudgetExceeded) as info:  # 0.50 spent + 0.90 reserved > 1
            await runtime.engine.complete(call(key.id, max_tokens=90_000))
        assert runtime.governor is not None
        [window] = await runtime.governor.status(call(key.id).context)
    refusal = info.value
    assert (refusal.account, refusal.window) == (f"key:{key.id}", "5h")
    assert refusal.resets_at is not None
    assert started + 5 * 3600 <= refusal.resets_at <= started + 5 * 3600 + 120
    assert len(double.calls) == 1
    assert window.used == pytest.approx(0.5, rel=0.01) and window.reserved == 0
    allow, reject = sink.of_type(GovernorDecision)
    assert (allow.decision, allow.account) == ("allow", f"key:{key.id}")
    assert (reject.decision, reject.account, reject.window) == ("reject", f"key:{key.id}", "5h")
    assert reject.details["key_id"] == key.id and reject.details["tenant"] == "acme"
    assert reject.details["resets_at"] == refusal.resets_at


async def test_rpm_counts_requests_in_a_sliding_minute_and_admin_keys_are_held_too(
    tmp_path: Path,
) -> None:
    sink = MemorySink()
    config = settings(tmp_path)
    async with Runtime.open(config, sink=sink, providers=[sonnet()], api_keys=True) as runtime:
        key, _ = await runtime.keys.create(NewKey(tenant="acme", rpm=2, admin=True))
        other, _ = await runtime.keys.create(NewKey(tenant="acme", rpm=2))
        for _ in range(2):
            await runtime.engine.complete(call(key.id))
        with pytest.raises(BudgetExceeded) as info:
            await runtime.engine.complete(call(key.id))
        await runtime.engine.complete(call(other.id))  # each key has its own limit
        await runtime.engine.complete(call(None))  # a call without a key: nothing to hold
    assert (info.value.account, info.value.window) == (f"key:{key.id}:rpm", "1m")
    assert info.value.resets_at is not None and info.value.resets_at <= time.time() + 61
    decisions = [(e.decision, e.account) for e in sink.of_type(GovernorDecision)]
    rpm = f"key:{key.id}:rpm"
    assert decisions == [
        ("allow", rpm),
        ("allow", rpm),
        ("reject", rpm),
        ("allow", f"key:{other.id}:rpm"),
    ]


async def test_key_budgets_are_shared_by_processes_through_the_governor_state(
    tmp_path: Path,
) -> None:
    config = settings(tmp_path)  # SQLite state: one file for every process on the machine
    async with Runtime.open(config, providers=[sonnet()], api_keys=True) as first:
        key, _ = await first.keys.create(NewKey(tenant="acme", rpm=1))
        await first.engine.complete(call(key.id))
    async with Runtime.open(config, providers=[sonnet()], api_keys=True) as second:
        with pytest.raises(BudgetExceeded):
            await second.engine.complete(call(key.id))


async def test_key_budgets_hold_while_configured_budgets_are_off(tmp_path: Path) -> None:
    budgets = [{"account": "team", "windows": [{"name": "5h", "limit": 1}]}]
    config = settings(
        tmp_path, governor={"enabled": False, "budgets": budgets, "backend": "memory"}
    )
    sink = MemorySink()
    async with Runtime.open(config, sink=sink, providers=[sonnet()], api_keys=True) as runtime:
        key, _ = await runtime.keys.create(NewKey(tenant="acme", rpm=1))
        await runtime.engine.complete(call(None, max_tokens=500))  # 'team' is not held
        await runtime.engine.complete(call(key.id, max_tokens=500))
        with pytest.raises(BudgetExceeded, match=f"key:{key.id}:rpm"):
            await runtime.engine.complete(call(key.id, max_tokens=500))
    assert {e.account for e in sink.of_type(GovernorDecision)} == {f"key:{key.id}:rpm"}


async def test_a_runtime_without_api_keys_consults_no_governor(tmp_path: Path) -> None:
    async with Runtime.open(settings(tmp_path), providers=[sonnet()]) as runtime:
        assert runtime.governor is None and runtime.engine.governor is None
