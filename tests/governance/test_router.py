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
from helios.messages import CallContext, Message, Request, SamplingParams, ToolCall, ToolSpec
from helios.providers.function import FunctionProvider
from helios.providers.registry import ProviderRegistry

OPUS = "anthropic:claude-opus-5-5"
SONNET = "anthropic:claude-sonnet-5-5"
LOCAL = "llamacpp:smollm2-135m-instruct"
TIERS: dict[Tier, str] = {"strong": "opus", "fast": "sonnet", "local": "local"}

TRIVIAL = Request.of("What is the capital of France?", model="auto")
CODING = Request.of(
    "Write a Python function that parses an ISO date; add unit tests.\n"
    "```python\ndef parse(text):\n    return None\n```",
    task_type="code",
    model="auto",
)
HARD = Request.of(
    "Prove step by step that the integral of x^2 from 0 to 3 equals 9; explain why, compare "
    "the two derivations and weigh the trade-offs.",
    task_type="reasoning",
    params=SamplingParams(max_tokens=3000),
    model="auto",
    context=CallContext(persona="synthesis"),
)


class FixedObservations:
    def __init__(self, stats: dict[str, ModelStats]) -> None:
        self._stats = stats

    def stats(self, spec: str) -> ModelStats | None:
        return self._stats.get(spec)


def _router(
    ready: Sequence[str] = (OPUS, SONNET, LOCAL),
    settings: Settings | None = None,
    observations: FixedObservations | None = None,
    policy: RouterSettings | None = None,
) -> EconomicRouter:
    """A router over a registry where the ``ready`` specs are served by doubles (the
    others are ready only if they could really run here)."""
    catalog = Catalog.load()
    registry = ProviderRegistry(settings or Settings(), catalog)
    for spec in ready:
        name, _, model = spec.partition(":")
        registry.add(FunctionProvider(replies=[], name=name, model=model))
    return EconomicRouter(
        registry, catalog, TIERS, policy or RouterSettings(), observations=observations
    )


def test_thresholds_pick_tiers() -> None:
    router = _router()
    assert router.decide(TRIVIAL).tier == "fast"  # local takes no intent by default
    assert router.decide(CODING).tier == "fast"
    hard = router.decide(HARD)
    assert hard.tier == "strong"
    assert hard.model == OPUS
    assert [hop.spec for hop in hard.fallbacks] == [SONNET, LOCAL]
    assert hard.budget == NO_BUDGET and not hard.explicit


def test_thresholds_are_configuration() -> None:
    router = _router()
    router.settings = RouterSettings(strong_above=0.01, fast_above=0.0)
    assert router.decide(TRIVIAL).tier == "strong"
    router.settings = RouterSettings(local_intents=["lookup"], fast_above=0.2)
    assert router.decide(TRIVIAL).tier == "local"


def test_explicit_model_wins() -> None:
    route = _router().decide(HARD.with_model("sonnet"))
    assert route.explicit and route.model == SONNET and route.tier == "fast"
    assert route.fallbacks == ()
    assert route.reason.startswith("explicit model")


def test_an_empty_spec_means_the_default_model_and_auto_may_be_the_default() -> None:
    router = _router()
    assert router.decide(HARD.with_model("")).model == LOCAL  # default_model: local
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(default_model="auto"), catalog)
    registry.add(FunctionProvider(replies=[], name="llamacpp", model="smollm2-135m-instruct"))
    routed = EconomicRouter(registry, catalog, TIERS).decide(HARD.with_model(""))
    assert not routed.explicit and routed.model == LOCAL


def test_models_that_cannot_run_here_are_passed_over_with_the_reason() -> None:
    router = _router(ready=[LOCAL])  # no API keys: only the local model can answer
    route = router.decide(HARD)
    assert route.scored_tier == "strong" and route.tier == "local" and route.model == LOCAL
    assert [hop.spec for hop in route.chain] == [LOCAL]
    assert any("skipped strong" in line and "no API key" in line for line in route.skipped)
    assert "skipped fast" in route.reason


def test_nothing_ready_is_a_clear_config_error() -> None:
    missing = Settings(local={"model_path": "/nowhere/model.gguf"})
    with pytest.raises(ConfigError, match="no model can answer 'auto'") as info:
        _router(ready=[], settings=missing).decide(HARD)
    assert "no API key" in str(info.value) and "/nowhere/model.gguf" in str(info.value)


def test_downgrade_moves_the_route_to_the_cheaper_tier_and_says_why() -> None:
    router = _router()
    route = router.downgrade(router.decide(HARD), "fast", "max/5h has no room")
    assert route.tier == "fast" and route.model == SONNET
    assert [hop.spec for hop in route.chain] == [SONNET, LOCAL]
    assert route.budget == "downgrade strong -> fast"
    assert "budget: strong -> fast (max/5h has no room)" in route.reason


def test_observations_skip_an_erroring_model() -> None:
    stats = {OPUS: ModelStats(calls=40, errors=20, p50_latency_s=1.0)}
    route = _router(observations=FixedObservations(stats)).decide(HARD)
    assert route.tier == "fast" and route.model == SONNET
    assert route.skipped and "error rate 50%" in route.skipped[0]
    assert "skipped strong" in route.reason


def test_no_healthy_alternative_keeps_the_chain() -> None:
    bad = ModelStats(calls=40, errors=40, p50_latency_s=None)
    stats = {OPUS: bad, SONNET: bad, LOCAL: bad}
    route = _router(observations=FixedObservations(stats)).decide(HARD)
    assert [hop.spec for hop in route.chain] == [OPUS, SONNET, LOCAL]
    assert "no healthy alternative" in route.reason


def test_observations_need_enough_calls() -> None:
    stats = {OPUS: ModelStats(calls=5, errors=5, p50_latency_s=None)}
    assert _router(observations=FixedObservations(stats)).decide(HARD).tier == "strong"


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


def test_tier_mapped_to_auto_is_refused() -> None:
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    with pytest.raises(ConfigError):
        EconomicRouter(registry, catalog, {"strong": "auto"}, RouterSettings())


def test_a_call_that_offers_tools_is_routed_to_a_model_that_can_call_them() -> None:
    router = _router(policy=RouterSettings(local_intents=["lookup"], fast_above=0.2))
    asks = Request.of(
        "What is the capital of France?", model="auto", tools=(ToolSpec(name="search"),)
    )
    route = router.decide(asks)
    assert route.scored_tier == "local" and route.model == SONNET
    assert any("cannot call tools" in line for line in route.skipped)
    answered = Request(
        messages=(
            Message(role="user", content="Capital of France?"),
            Message(role="assistant", content="", tool_calls=(ToolCall(id="c", name="search"),)),
            Message(role="tool", content="Paris", tool_call_id="c"),
        ),
        model="auto",
    )
    assert router.decide(answered).model == SONNET  # a tool turn needs a tool-capable model


def test_a_model_added_is_seen_on_the_next_decision() -> None:
    router = _router(ready=[LOCAL])
    assert router.decide(HARD).model == LOCAL
    router.registry.add(FunctionProvider(replies=[], name="anthropic", model="claude-opus-5-5"))
    assert router.decide(HARD).model == OPUS  # "not ready" is never kept


def test_the_route_says_which_intent_and_rule_picked_the_tier() -> None:
    route = _router().decide(HARD)
    assert (route.intent, route.cue) == ("proof", "prove")
    assert route.rule.endswith("> strong_above 0.45")
    assert route.reason.startswith("score ") and "(intent proof 'prove')" in route.reason
