from collections.abc import Sequence

import pytest

from helios.catalog import Catalog, Tier
from helios.config.router import RouterSettings
from helios.config.settings import Settings
from helios.errors import ConfigError, ProviderUnavailable
from helios.governance.router import (
    NO_BUDGET,
    EconomicRouter,
    ModelObservations,
    ModelStats,
    failed_spec_of,
    fallback_reason,
)
from helios.ledger.events import ErrorEvent, Event, PersonaLLMRun, RouteDecision
from helios.ledger.sink import MemorySink
from helios.messages import CallContext, Request, SamplingParams
from helios.providers.base import Provider
from helios.providers.function import FunctionProvider, Reply
from helios.providers.registry import ProviderRegistry

OPUS = "anthropic:claude-opus-5-5"
SONNET = "anthropic:claude-sonnet-5-5"
LOCAL = "llamacpp:smollm2-135m-instruct"
TIERS: dict[Tier, str] = {"strong": "opus", "fast": "sonnet", "local": "local"}

TRIVIAL = Request.of("What is the capital of France?", metadata={"task_id": "t1"})
CODING = Request.of(
    "Write a Python function that parses an ISO date; add unit tests.\n"
    "```python\ndef parse(text):\n    return None\n```",
    task_type="code",
)
HARD = Request.of(
    "Prove step by step that the integral of x^2 from 0 to 3 equals 9; explain why, compare "
    "the two derivations and weigh the trade-offs.",
    task_type="reasoning",
    params=SamplingParams(max_tokens=3000),
    metadata={"task_id": "t2"},
    context=CallContext(persona="synthesis"),
)


def _provider(spec: str, replies: Sequence[Reply]) -> FunctionProvider:
    name, _, model = spec.partition(":")
    return FunctionProvider(replies=list(replies), name=name, model=model)


def _router(
    replies: dict[str, Sequence[Reply]] | None = None, **options: object
) -> tuple[EconomicRouter, dict[str, FunctionProvider], MemorySink]:
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    replies = replies or {}
    providers = {spec: _provider(spec, replies.get(spec, [])) for spec in (OPUS, SONNET, LOCAL)}
    for provider in providers.values():
        registry.add(provider)
    sink = MemorySink()
    router = EconomicRouter(
        registry,
        catalog,
        TIERS,
        RouterSettings(),
        sink=sink,
        **options,  # type: ignore[arg-type]
    )
    return router, providers, sink


class FakeBudget:
    def __init__(self, advice: Tier | None) -> None:
        self.advice = advice
        self.asked: list[Tier] = []

    async def advise(self, request: Request, tier: Tier) -> Tier | None:
        self.asked.append(tier)
        return self.advice


class FixedObservations:
    def __init__(self, stats: dict[str, ModelStats]) -> None:
        self._stats = stats

    def stats(self, spec: str) -> ModelStats | None:
        return self._stats.get(spec)


async def test_thresholds_pick_tiers() -> None:
    router, _, _ = _router()
    assert (await router.decide(TRIVIAL)).tier == "local"
    assert (await router.decide(CODING)).tier == "fast"
    hard = await router.decide(HARD)
    assert hard.tier == "strong"
    assert hard.model == OPUS
    assert [hop.spec for hop in hard.fallbacks] == [SONNET, LOCAL]
    assert hard.budget == NO_BUDGET


async def test_thresholds_are_configuration() -> None:
    router, _, _ = _router()
    router.settings = RouterSettings(strong_above=0.05, fast_above=0.01)
    assert (await router.decide(TRIVIAL)).tier == "strong"


async def test_explicit_model_wins() -> None:
    router, providers, sink = _router({SONNET: ["from sonnet"]})
    request = HARD.with_model("sonnet")
    route = await router.decide(request)
    assert route.explicit and route.model == SONNET and route.tier == "fast"
    assert route.fallbacks == ()
    completion = await router.complete(request)
    assert completion.text == "from sonnet"
    assert providers[OPUS].calls == []
    assert sink.of_type(RouteDecision)[0].reason.startswith("explicit model")


async def test_budget_advisor_downgrades() -> None:
    budget = FakeBudget("fast")
    router, _, _ = _router(budget=budget)
    route = await router.decide(HARD)
    assert budget.asked == ["strong"]
    assert route.scored_tier == "strong" and route.tier == "fast" and route.model == SONNET
    assert route.budget == "downgrade strong -> fast"
    assert "budget: strong -> fast" in route.reason


async def test_budget_advice_to_move_up_is_ignored() -> None:
    router, _, _ = _router(budget=FakeBudget("strong"))
    route = await router.decide(TRIVIAL)
    assert route.tier == "local"
    assert "ignored" in route.budget


async def test_budget_within() -> None:
    router, _, _ = _router(budget=FakeBudget(None))
    assert (await router.decide(HARD)).budget == "within budget"


async def test_observations_skip_an_erroring_model() -> None:
    stats = {OPUS: ModelStats(calls=40, errors=20, p50_latency_s=1.0)}
    router, _, _ = _router(observations=FixedObservations(stats))
    route = await router.decide(HARD)
    assert route.tier == "fast" and route.model == SONNET
    assert route.skipped and "error rate 50%" in route.skipped[0]
    assert "skipped strong" in route.reason


async def test_observations_need_enough_calls() -> None:
    stats = {OPUS: ModelStats(calls=5, errors=5, p50_latency_s=None)}
    router, _, _ = _router(observations=FixedObservations(stats))
    assert (await router.decide(HARD)).tier == "strong"


def test_observations_from_events() -> None:
    def run(duration: float) -> PersonaLLMRun:
        return PersonaLLMRun(
            task_id="t", persona="thesis", stage="thesis", provider="anthropic",
            model="claude-opus-5-5", streaming=False, ttft_s=duration, duration_s=duration,
            perceived_improvement=0.0, input_tokens=1, output_tokens=1, cost_usd=0.0,
        )  # fmt: skip

    events: list[Event] = [run(1.0), run(2.0), run(3.0)]
    events.append(ErrorEvent(task_id="t", kind="ProviderUnavailable", message=f"{OPUS}: down"))
    events.append(ErrorEvent(task_id="t", kind="InputError", message="empty goal"))
    events.append(
        RouteDecision(
            task_id="t", model=SONNET, tier="fast", score=0.9,
            reason=fallback_reason(OPUS, ProviderUnavailable("overloaded")),
        )
    )  # fmt: skip
    stats = ModelObservations.from_events(events).stats(OPUS)
    assert stats is not None
    assert (stats.calls, stats.errors, stats.p50_latency_s) == (5, 2, 2.0)
    assert stats.error_rate == pytest.approx(0.4)
    assert failed_spec_of("score 0.5 -> fast") is None


async def test_fallback_chain_strong_unavailable_fast_answers() -> None:
    router, providers, sink = _router(
        {OPUS: [ProviderUnavailable("overloaded")], SONNET: ["sonnet answers"]}
    )
    completion = await router.complete(HARD)
    assert completion.text == "sonnet answers"
    assert (completion.provider, completion.model) == ("anthropic", "claude-sonnet-5-5")
    assert providers[LOCAL].calls == []
    decisions = sink.of_type(RouteDecision)
    assert [(event.model, event.tier) for event in decisions] == [
        (OPUS, "strong"),
        (SONNET, "fast"),
    ]
    assert decisions[1].reason.startswith(f"fallback: {OPUS} failed: ProviderUnavailable")
    assert all(event.task_id == "t2" and event.persona == "synthesis" for event in decisions)


async def test_all_fail_raises_the_last_error() -> None:
    router, _, sink = _router(
        {
            OPUS: [ProviderUnavailable("a")],
            SONNET: [ProviderUnavailable("b")],
            LOCAL: [ProviderUnavailable("c")],
        }
    )
    with pytest.raises(ProviderUnavailable, match="c"):
        await router.complete(HARD)
    assert len(sink.of_type(RouteDecision)) == 3


async def test_stream_falls_back_only_before_the_first_chunk() -> None:
    router, _, _ = _router({OPUS: [ProviderUnavailable("down")], SONNET: [["so", "nnet"]]})
    text = "".join([chunk.text async for chunk in router.stream(HARD)])
    assert text == "sonnet"
    router, providers, _ = _router(
        {OPUS: [["par", ProviderUnavailable("dropped")]], SONNET: ["unused"]}
    )
    with pytest.raises(ProviderUnavailable):
        async for _chunk in router.stream(HARD):
            pass
    assert providers[SONNET].calls == []


async def test_one_event_per_call_with_task_id() -> None:
    router, _, sink = _router({LOCAL: ["Paris"], SONNET: ["code"]})
    await router.complete(TRIVIAL)
    await router.complete(CODING)
    events = sink.of_type(RouteDecision)
    assert [(event.task_id, event.tier, event.model) for event in events] == [
        ("t1", "local", LOCAL),
        ("-", "fast", SONNET),
    ]
    assert events[0].score == (await router.decide(TRIVIAL)).score


def test_router_is_a_provider() -> None:
    router, _, _ = _router()
    assert isinstance(router, Provider)
    assert router.spec == "router:auto"


def test_tier_mapped_to_auto_is_refused() -> None:
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    with pytest.raises(ConfigError):
        EconomicRouter(registry, catalog, {"strong": "auto"}, RouterSettings())
