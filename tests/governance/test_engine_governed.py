"""The engine with the governor and the router: budgets decide before each provider call."""

from __future__ import annotations

import pytest

from helios.call_events import LedgerRecorder
from helios.catalog import Catalog
from helios.config.governor import BudgetSettings, WindowSettings
from helios.config.router import RouterSettings
from helios.config.settings import Settings
from helios.engine import Engine
from helios.errors import BudgetExceeded, ProviderUnavailable
from helios.governance.governor import Governor
from helios.governance.router import EconomicRouter
from helios.governance.state import MemoryState
from helios.ledger.events import GovernorDecision, RouteDecision
from helios.ledger.sink import MemorySink
from helios.messages import Request, SamplingParams, Usage
from helios.pipeline.admission import GovernorAdmission
from helios.pipeline.dag import TaskSpec
from helios.providers.function import FunctionProvider
from helios.providers.registry import ProviderRegistry

TIERS = {"strong": "opus", "fast": "sonnet", "local": "local"}
OPUS = ("anthropic", "claude-opus-5-5")
SONNET = ("anthropic", "claude-sonnet-5-5")


def world(
    limit: float, *, on_exhausted: str = "downgrade", failing: bool = False
) -> tuple[Engine, Governor, MemorySink, dict[str, FunctionProvider]]:
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    doubles = {}
    for provider, model in (OPUS, SONNET, ("llamacpp", "smollm2-135m-instruct")):
        replies = (
            [ProviderUnavailable("down", provider=provider, model=model)]
            if failing and (model == OPUS[1])
            else None
        )
        double = (
            FunctionProvider(replies=replies, name=provider, model=model)
            if replies
            else FunctionProvider(lambda r, m=model: f"answer from {m}", name=provider, model=model)
        )
        registry.add(double)
        doubles[model] = double
    sink = MemorySink()
    budget = BudgetSettings(
        windows=[WindowSettings(name="session", kind="session", length_s=18000, limit=limit)],
        high_priority_share=0.0,
        on_exhausted=on_exhausted,  # type: ignore[arg-type]
    )
    governor = Governor(MemoryState(), [budget], catalog, sink=sink)
    router = EconomicRouter(registry, catalog, TIERS, RouterSettings())
    engine = Engine(
        registry,
        catalog,
        router=router,
        governor=governor,
        tiers=TIERS,
        observers=[LedgerRecorder(sink)],
    )
    return engine, governor, sink, doubles


def ask(model: str, tokens: int = 50) -> Request:
    return Request.of("hello there", model=model, params=SamplingParams(max_tokens=tokens))


async def test_allowed_calls_commit_their_real_usage() -> None:
    engine, governor, sink, _ = world(limit=100_000)
    completion = await engine.complete(ask("opus"))
    assert completion.model == OPUS[1]
    [window] = await governor.status()
    assert window.reserved == 0 and window.used > 0  # the estimate was replaced by usage
    assert [e.decision for e in sink.of_type(GovernorDecision)] == ["allow"]


async def test_an_exhausted_strong_budget_downgrades_to_the_fast_tier() -> None:
    # strong tokens weigh 5, fast 1: the opus estimate does not fit, the sonnet one does
    engine, _, sink, doubles = world(limit=1_000)
    completion = await engine.complete(ask("opus", tokens=300))
    assert completion.model == SONNET[1]
    assert [e.decision for e in sink.of_type(GovernorDecision)] == ["downgrade", "allow"]
    assert doubles[OPUS[1]].calls == []


async def test_reject_raises_budget_exceeded_with_the_reset_time() -> None:
    engine, _, _, doubles = world(limit=10, on_exhausted="reject")
    with pytest.raises(BudgetExceeded) as info:
        await engine.complete(ask("sonnet"))
    assert info.value.window == "session" and info.value.resets_at is not None
    assert doubles[SONNET[1]].calls == []


async def test_a_failed_call_releases_its_reservation() -> None:
    engine, governor, _, _ = world(limit=100_000, failing=True)
    with pytest.raises(ProviderUnavailable):
        await engine.complete(ask("opus"))
    [window] = await governor.status()
    assert window.reserved == 0 and window.used == 0


async def test_auto_is_routed_and_budgeted_on_the_chosen_model() -> None:
    engine, _, sink, _ = world(limit=100_000)
    completion = await engine.complete(ask("auto"))
    [route] = sink.of_type(RouteDecision)
    assert f"{completion.provider}:{completion.model}" == route.model
    [decision] = sink.of_type(GovernorDecision)
    assert decision.details["model"] == completion.model


async def test_streams_are_governed_too() -> None:
    engine, governor, _, _ = world(limit=100_000)
    stream = engine.stream(ask("sonnet"))
    assert "".join([c.text async for c in stream])
    [window] = await governor.status()
    assert window.reserved == 0 and window.used > 0


async def test_dag_admission_defers_until_a_reset_or_rejects() -> None:
    _, governor, _, _ = world(limit=1_000, on_exhausted="reject")
    task = TaskSpec(id="t", persona="bard", prompt="x")
    assert (await GovernorAdmission(governor).admit(task)).action == "allow"
    reservation = await governor.reserve(ask("sonnet"), *SONNET)
    await governor.commit(reservation, Usage(input_tokens=1_000))  # the window is now full
    rejected = await GovernorAdmission(governor).admit(task)
    assert rejected.action == "reject" and "resets" in rejected.reason
    waiting = await GovernorAdmission(governor, max_defer_s=10 * 3600).admit(task)
    assert waiting.action == "defer" and 0 < waiting.eta_s <= 18000


async def test_a_routed_stream_reports_the_model_that_answered() -> None:
    engine, _, sink, _ = world(limit=100_000)
    stream = engine.stream(ask("auto"))
    async for _ in stream:
        pass
    assert stream.completion is not None
    [route] = sink.of_type(RouteDecision)
    assert f"{stream.completion.provider}:{stream.completion.model}" == route.model
    assert stream.completion.cost_usd is not None  # priced: the catalogue knows the model


async def test_a_fallback_that_answers_is_committed_at_its_own_price() -> None:
    # opus fails; the route of an auto call falls back to sonnet, which answers
    engine, governor, sink, _ = world(limit=100_000, failing=True)
    hard = Request.of(
        "Prove step by step why the integral of x^2 from 0 to 3 is 9 and weigh both proofs.",
        model="auto",
        task_type="reasoning",
        params=SamplingParams(max_tokens=3000),
    )
    completion = await engine.complete(hard)
    assert completion.model == SONNET[1]
    [allowed] = sink.of_type(GovernorDecision)
    assert allowed.details["model"] == OPUS[1]  # reserved for the route's first model
    [window] = await governor.status()
    # committed at sonnet's weight (1 a token), not opus's (5): usage is a handful of tokens
    assert window.reserved == 0 and 0 < window.used == completion.usage.total_tokens
    decided, fell_back = sink.of_type(RouteDecision)
    assert decided.model == f"{OPUS[0]}:{OPUS[1]}"
    assert fell_back.model == f"{SONNET[0]}:{SONNET[1]}" and "fallback" in fell_back.reason
