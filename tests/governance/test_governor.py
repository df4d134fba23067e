"""The governor's decisions, units, priorities and events (memory state unless noted)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from helios.catalog import Catalog
from helios.config.governor import BudgetSettings, GovernorSettings, WindowSettings
from helios.errors import BudgetExceeded
from helios.governance.estimate import MESSAGE_OVERHEAD_TOKENS, estimate_tokens
from helios.governance.governor import Governor, cheaper_tier
from helios.governance.state.memory import MemoryState
from helios.ledger.events import GovernorDecision
from helios.ledger.sink import MemorySink
from helios.messages import Request, Usage
from tests.governance.conftest import FakeClock, MakeState

# "x" * 40 -> 10 tokens + 4 overhead = 14 prompt tokens, + max_tokens 6 = 20 tokens
PROMPT = "x" * 40


def request(max_tokens: int = 6, task_id: str | None = None) -> Request:
    return Request.of(PROMPT, params={"max_tokens": max_tokens}).with_context(task_id=task_id)


def requests_budget(limit: float = 10, **fields: Any) -> BudgetSettings:
    fields.setdefault("high_priority_share", 0.0)
    return BudgetSettings(
        account="acct",
        unit="requests",
        windows=[WindowSettings(name="5h", kind="session", length_s=100, limit=limit)],
        **fields,
    )


def make_governor(
    catalog: Catalog, clock: FakeClock, *budgets: BudgetSettings, sink: MemorySink | None = None
) -> Governor:
    return Governor(MemoryState(), budgets, catalog, sink=sink, clock=clock)


def test_estimate_heuristic_and_injected_tokenizer() -> None:
    assert estimate_tokens(request()).total == 10 + MESSAGE_OVERHEAD_TOKENS + 6
    assert estimate_tokens(Request.of("hi"), default_max_tokens=100).output_tokens == 100
    by_words = estimate_tokens(request(), tokenizer=lambda text: len(text.split()))
    assert by_words.input_tokens == 1 + MESSAGE_OVERHEAD_TOKENS


def test_cheaper_tier() -> None:
    assert cheaper_tier("strong") == "fast"
    assert cheaper_tier("fast") == "local"
    assert cheaper_tier("local") is None
    assert cheaper_tier(None) is None


async def test_allow_reserves_weighted_tokens_and_commit_replaces(
    catalog: Catalog, clock: FakeClock
) -> None:
    budget = BudgetSettings(
        windows=[WindowSettings(name="5h", limit=1000)], high_priority_share=0.0
    )
    governor = make_governor(catalog, clock, budget)
    reservation = await governor.reserve(request(), "anthropic", "big")
    assert reservation.allowed
    assert reservation.units == (("default", 100.0),)  # 20 tokens x strong weight 5
    (status,) = await governor.status()
    assert (status.used, status.reserved, status.remaining) == (0, 100, 900)
    await governor.commit(reservation, Usage(input_tokens=10, output_tokens=2))
    await governor.commit(reservation, Usage(input_tokens=10, output_tokens=2))  # once only
    (status,) = await governor.status()
    assert (status.used, status.reserved) == (60, 0)
    local = await governor.reserve(request(), "llamacpp", "tiny")
    assert local.units == (("default", 0.0),)  # local tier weighs nothing


async def test_usd_budget_counts_catalogue_prices(catalog: Catalog, clock: FakeClock) -> None:
    budget = BudgetSettings(unit="usd", windows=[WindowSettings(name="5h", limit=1.0)])
    governor = make_governor(catalog, clock, budget)
    reservation = await governor.reserve(request(max_tokens=1000), "anthropic", "big")
    # 14 input tokens at $3/M + 1000 output tokens at $15/M
    assert reservation.units[0][1] == pytest.approx(14 * 3e-6 + 1000 * 15e-6)


async def test_budget_covers_only_its_providers(catalog: Catalog, clock: FakeClock) -> None:
    governor = make_governor(catalog, clock, requests_budget(limit=0, providers=["openai"]))
    assert (await governor.reserve(request(), "anthropic", "big")).allowed


async def test_downgrade_suggests_a_cheaper_tier(catalog: Catalog, clock: FakeClock) -> None:
    sink = MemorySink()
    governor = make_governor(catalog, clock, requests_budget(limit=1), sink=sink)
    assert (await governor.reserve(request(task_id="t1"), "anthropic", "big")).allowed
    answer = await governor.reserve(request(task_id="t1"), "anthropic", "big")
    assert answer.decision == "downgrade"
    assert answer.suggested_tier == "fast"
    assert (answer.account, answer.window) == ("acct", "5h")
    await governor.commit(answer, Usage(output_tokens=5))  # holds nothing: a no-op
    (status,) = await governor.status()
    assert status.used == 0
    events = sink.of_type(GovernorDecision)
    assert [event.decision for event in events] == ["allow", "downgrade"]
    assert events[1].task_id == "t1"
    assert events[1].details["suggested_tier"] == "fast"
    # nothing is cheaper than local: the downgrade policy rejects
    with pytest.raises(BudgetExceeded):
        await governor.reserve(request(), "llamacpp", "tiny")


async def test_defer_gives_an_eta_within_max_defer(catalog: Catalog, clock: FakeClock) -> None:
    sink = MemorySink()
    budget = requests_budget(limit=1, on_exhausted="defer", max_defer_s=60)
    governor = make_governor(catalog, clock, budget, sink=sink)
    first = await governor.reserve(request(), "anthropic", "big")
    await governor.commit(first, Usage(output_tokens=1))
    clock.advance(70)
    answer = await governor.reserve(request(), "anthropic", "big")
    assert answer.decision == "defer"
    assert answer.eta_s == pytest.approx(30)
    assert sink.of_type(GovernorDecision)[-1].details["eta_s"] == pytest.approx(30)
    clock.advance(30)
    assert (await governor.reserve(request(), "anthropic", "big")).allowed


async def test_defer_too_long_rejects(catalog: Catalog, clock: FakeClock) -> None:
    budget = requests_budget(limit=1, on_exhausted="defer", max_defer_s=10)
    governor = make_governor(catalog, clock, budget)
    await governor.reserve(request(), "anthropic", "big")
    with pytest.raises(BudgetExceeded):
        await governor.reserve(request(), "anthropic", "big")


async def test_reject_names_window_and_reset_time(catalog: Catalog, clock: FakeClock) -> None:
    sink = MemorySink()
    governor = make_governor(
        catalog, clock, requests_budget(limit=1, on_exhausted="reject"), sink=sink
    )
    started = clock()
    await governor.reserve(request(), "anthropic", "big")
    with pytest.raises(BudgetExceeded) as info:
        await governor.reserve(request(), "anthropic", "big")
    assert (info.value.account, info.value.window) == ("acct", "5h")
    assert info.value.resets_at == pytest.approx(started + 100)  # when the window resets
    # the message gives that moment in ISO 8601 with the offset, never an epoch number
    reset = datetime.fromtimestamp(info.value.resets_at).astimezone()
    assert str(info.value).endswith(f"; room again at {reset.isoformat(timespec='seconds')}")
    assert "epoch" not in str(info.value)
    governor = make_governor(catalog, clock, requests_budget(limit=1, on_exhausted="reject"))
    first = await governor.reserve(request(), "anthropic", "big")
    await governor.commit(first, Usage(output_tokens=1))
    with pytest.raises(BudgetExceeded) as info:
        await governor.reserve(request(), "anthropic", "big")
    assert info.value.resets_at == pytest.approx(started + 100)
    assert sink.of_type(GovernorDecision)[1].decision == "reject"


async def test_high_priority_keeps_its_share(catalog: Catalog, clock: FakeClock) -> None:
    budget = requests_budget(limit=10, high_priority_share=0.2, on_exhausted="reject")
    governor = make_governor(catalog, clock, budget)
    for _ in range(8):
        assert (await governor.reserve(request(), "anthropic", "big")).allowed
    with pytest.raises(BudgetExceeded):
        await governor.reserve(request(), "anthropic", "big")  # normal: 80% is full
    for _ in range(2):
        high = await governor.reserve(request(), "anthropic", "big", priority="high")
        assert high.allowed
    with pytest.raises(BudgetExceeded):
        await governor.reserve(request(), "anthropic", "big", priority="high")


async def test_release_frees_the_units(catalog: Catalog, clock: FakeClock) -> None:
    governor = make_governor(catalog, clock, requests_budget(limit=1, on_exhausted="reject"))
    reservation = await governor.reserve(request(), "anthropic", "big")
    await governor.release(reservation)
    assert (await governor.reserve(request(), "anthropic", "big")).allowed


async def test_every_window_of_every_budget_is_checked(catalog: Catalog, clock: FakeClock) -> None:
    wide = requests_budget(limit=100)
    narrow = BudgetSettings(
        account="other",
        unit="requests",
        high_priority_share=0.0,
        on_exhausted="reject",
        windows=[
            WindowSettings(name="5h", limit=100),
            WindowSettings(name="minute", kind="sliding", length_s=60, limit=2),
        ],
    )
    governor = make_governor(catalog, clock, wide, narrow)
    for _ in range(2):
        await governor.reserve(request(), "anthropic", "big")
    with pytest.raises(BudgetExceeded) as info:
        await governor.reserve(request(), "anthropic", "big")
    assert (info.value.account, info.value.window) == ("other", "minute")
    statuses = await governor.status()
    assert [(s.account, s.window, s.reserved) for s in statuses] == [
        ("acct", "5h", 2),
        ("other", "5h", 2),
        ("other", "minute", 2),
    ]


async def test_concurrent_governor_reservations_never_over_commit(
    make_state: MakeState, catalog: Catalog, clock: FakeClock
) -> None:
    budget = requests_budget(limit=120, on_exhausted="reject")
    governor = Governor(make_state(), [budget], catalog, clock=clock)

    async def one() -> bool:
        try:
            await governor.reserve(request(), "anthropic", "big")
        except BudgetExceeded:
            return False
        return True

    granted = sum(await asyncio.gather(*(one() for _ in range(200))))
    (status,) = await governor.status()
    assert granted == 120
    assert status.reserved == pytest.approx(120)


def test_settings_defaults_and_validation() -> None:
    settings = GovernorSettings.model_validate(
        {"budgets": [{"windows": [{"name": "5h", "limit": 10}]}]}
    )
    (budget,) = settings.budgets
    assert settings.backend == "sqlite"
    assert settings.sqlite_path().name == "governor.sqlite3"
    assert budget.windows[0].length_s == 18000
    assert budget.tier_weights == {"strong": 5, "fast": 1, "local": 0}
    with pytest.raises(ValueError, match="unique"):
        BudgetSettings(windows=[WindowSettings(name="a", limit=1)] * 2)
    with pytest.raises(ValueError):
        GovernorSettings.model_validate({"bogus": 1})
