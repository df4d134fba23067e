"""The economic router: the cheapest tier that can do the job, as a provider.

:class:`EconomicRouter` is a :class:`~helios.providers.base.Provider` (``router:auto``). For
each call it decides a :class:`Route`:

1. **Explicit models win.** A request whose ``model`` is neither ``"auto"`` nor ``""`` goes
   straight to the registry: no scoring, no budget, no fallbacks.
2. **Complexity** (:mod:`helios.governance.complexity`) gives a score; the settings'
   thresholds turn it into a tier, and ``tiers`` (``settings.tiers``) into a model spec.
3. **Budget**: a :class:`BudgetAdvisor` may name a cheaper tier (the governor's downgrade).
4. **Health**: a model whose error rate is above ``avoid_error_rate_above`` over at least
   ``min_observations`` calls (from :class:`ObservationSource`) is skipped for the next
   healthy tier of its fallback list.
5. The call runs through a :class:`~helios.governance.fallback.FallbackProvider` over the
   chosen tier's model and its fallbacks.

One ``route_decision`` event is emitted per call (``task_id`` from
``request.metadata["task_id"]``), plus one per fallback with reason
``"fallback: <spec> failed: <error>"``. The completion names the provider and model that
really answered.
"""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from helios.catalog import Catalog, Tier
from helios.config.router import RouterSettings
from helios.errors import ConfigError, ProviderError
from helios.governance.complexity import score
from helios.governance.fallback import FallbackProvider
from helios.ledger.events import ErrorEvent, Event, PersonaLLMRun, RouteDecision
from helios.ledger.sink import EventSink
from helios.messages import Chunk, Completion, Request
from helios.providers.base import Provider
from helios.providers.registry import ProviderRegistry

AUTO_MODELS = frozenset({"auto", ""})
ROUTER_NAME = "router"
"""The provider name the router registers under: ``auto`` is ``router:auto``."""
TIER_ORDER: tuple[Tier, ...] = ("local", "fast", "strong")
NO_BUDGET = "no budget configured"


class BudgetAdvisor(Protocol):
    """The governor's view of the budget: a cheaper tier to use instead, or ``None``."""

    async def advise(self, request: Request, tier: Tier) -> Tier | None: ...


def fallback_reason(failed_spec: str, error: BaseException) -> str:
    return f"fallback: {failed_spec} failed: {type(error).__name__}: {error}"


def failed_spec_of(reason: str) -> str | None:
    """The model spec a ``fallback_reason`` names, or ``None`` for another reason."""
    prefix = "fallback: "
    if not reason.startswith(prefix) or " failed: " not in reason:
        return None
    return reason[len(prefix) :].split(" failed: ", 1)[0]


@dataclass(frozen=True, slots=True)
class ModelStats:
    calls: int
    errors: int
    p50_latency_s: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


class ObservationSource(Protocol):
    """Per-model health, keyed by canonical ``provider:model`` spec."""

    def stats(self, spec: str) -> ModelStats | None: ...


class ModelObservations:
    """Error rates and median latencies computed from ledger events.

    A ``persona_llm_run`` is a success (its ``duration_s`` a latency sample, cache hits
    excluded); a failure is an ``error`` event whose message starts with the
    ``provider:model:`` prefix every :class:`~helios.errors.ProviderError` carries, or a
    ``route_decision`` whose reason is a :func:`fallback_reason`.
    """

    def __init__(self, stats: Mapping[str, ModelStats]) -> None:
        self._stats = dict(stats)

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> ModelObservations:
        latencies: dict[str, list[float]] = {}
        errors: dict[str, int] = {}
        for event in events:
            if isinstance(event, PersonaLLMRun) and event.cache_layer is None:
                spec = f"{event.provider}:{event.model}"
                latencies.setdefault(spec, []).append(event.duration_s)
            elif isinstance(event, ErrorEvent):
                spec_or_none = _spec_prefix(event.message)
                if spec_or_none is not None:
                    errors[spec_or_none] = errors.get(spec_or_none, 0) + 1
            elif isinstance(event, RouteDecision):
                failed = failed_spec_of(event.reason)
                if failed is not None:
                    errors[failed] = errors.get(failed, 0) + 1
        stats = {
            spec: ModelStats(
                calls=len(latencies.get(spec, [])) + errors.get(spec, 0),
                errors=errors.get(spec, 0),
                p50_latency_s=(statistics.median(latencies[spec]) if latencies.get(spec) else None),
            )
            for spec in {*latencies, *errors}
        }
        return cls(stats)

    def stats(self, spec: str) -> ModelStats | None:
        return self._stats.get(spec)


def _spec_prefix(message: str) -> str | None:
    """``"anthropic:claude-x"`` from ``"anthropic:claude-x: overloaded"``."""
    head, sep, _ = message.partition(": ")
    if not sep or ":" not in head or " " in head:
        return None
    return head


@dataclass(frozen=True, slots=True)
class Hop:
    """One model of a route: its tier (``None`` for an explicit model) and canonical spec."""

    tier: Tier | None
    spec: str


@dataclass(frozen=True, slots=True)
class Route:
    """Why a request goes where it goes; ``chain[0]`` is the model called first."""

    tier: Tier | None
    model: str
    """The canonical ``provider:model`` spec called first."""
    score: float
    reason: str
    chain: tuple[Hop, ...]
    features: dict[str, float] = field(default_factory=dict)
    contributions: dict[str, float] = field(default_factory=dict)
    scored_tier: Tier | None = None
    """The tier the score alone picked, before budget and health."""
    budget: str = NO_BUDGET
    skipped: tuple[str, ...] = ()
    """Why tiers were passed over (unhealthy models)."""
    explicit: bool = False

    @property
    def fallbacks(self) -> tuple[Hop, ...]:
        return self.chain[1:]


class EconomicRouter(Provider):
    def __init__(
        self,
        registry: ProviderRegistry,
        catalog: Catalog,
        tiers: Mapping[Tier, str],
        settings: RouterSettings | None = None,
        *,
        budget: BudgetAdvisor | None = None,
        observations: ObservationSource | None = None,
        sink: EventSink | None = None,
    ) -> None:
        for tier, spec in tiers.items():
            if spec in AUTO_MODELS:
                raise ConfigError(f"tiers.{tier}: '{spec}' would route to the router itself")
        self.name = ROUTER_NAME
        self.model = "auto"
        self.registry = registry
        self.catalog = catalog
        self.tiers = dict(tiers)
        self.settings = settings or RouterSettings()
        self.budget = budget
        self.observations = observations
        self.sink = sink

    # -- deciding ---------------------------------------------------------------------
    async def decide(self, request: Request) -> Route:
        """Where ``request`` goes and why; calls no model."""
        if request.model not in AUTO_MODELS:
            spec = self._canonical(request.model)
            return Route(
                tier=self._tier_of(spec),
                model=spec,
                score=0.0,
                reason=f"explicit model '{request.model}'",
                chain=(Hop(self._tier_of(spec), spec),),
                budget="not consulted (explicit model)",
                explicit=True,
            )
        complexity = score(request, self.settings)
        scored = self.settings.tier_for(complexity.score)
        reasons = [f"score {complexity.score:.2f} -> {scored}"]
        tier, budget_state = await self._apply_budget(request, scored)
        if tier != scored:
            reasons.append(f"budget: {scored} -> {tier}")
        tier, skipped = self._apply_health(tier)
        reasons.extend(skipped)
        chain = self._chain(tier)
        return Route(
            tier=tier,
            model=chain[0].spec,
            score=complexity.score,
            reason="; ".join(reasons),
            chain=chain,
            features=complexity.features,
            contributions=complexity.contributions,
            scored_tier=scored,
            budget=budget_state,
            skipped=tuple(skipped),
        )

    async def _apply_budget(self, request: Request, tier: Tier) -> tuple[Tier, str]:
        if self.budget is None:
            return tier, NO_BUDGET
        advised = await self.budget.advise(request, tier)
        if advised is None or advised == tier:
            return tier, "within budget"
        if TIER_ORDER.index(advised) > TIER_ORDER.index(tier):
            return tier, f"ignored advice to move up to {advised}"
        return advised, f"downgrade {tier} -> {advised}"

    def _apply_health(self, tier: Tier) -> tuple[Tier, list[str]]:
        unhealthy = self._unhealthy(tier)
        if unhealthy is None:
            return tier, []
        skipped = [f"skipped {tier} ({unhealthy})"]
        for candidate in self.settings.fallbacks.get(tier, []):
            problem = self._unhealthy(candidate)
            if problem is None:
                return candidate, skipped
            skipped.append(f"skipped {candidate} ({problem})")
        skipped.append(f"no healthy alternative: kept {tier}")
        return tier, skipped

    def _unhealthy(self, tier: Tier) -> str | None:
        if self.observations is None:
            return None
        spec = self._canonical(self._spec_of(tier))
        stats: ModelStats | None = self.observations.stats(spec)
        if stats is None or stats.calls < self.settings.min_observations:
            return None
        if stats.error_rate <= self.settings.avoid_error_rate_above:
            return None
        return f"{spec} error rate {stats.error_rate:.0%} over {stats.calls} calls"

    def _chain(self, tier: Tier) -> tuple[Hop, ...]:
        hops: list[Hop] = []
        for candidate in (tier, *self.settings.fallbacks.get(tier, [])):
            spec = self._canonical(self._spec_of(candidate))
            if all(hop.spec != spec for hop in hops):
                hops.append(Hop(candidate, spec))
        return tuple(hops)

    def _spec_of(self, tier: Tier) -> str:
        spec = self.tiers.get(tier)
        if spec is None:
            raise ConfigError(f"tiers: no model configured for tier '{tier}'")
        return spec

    def _canonical(self, spec: str) -> str:
        provider, model = self.registry.parse(spec)
        return f"{provider}:{model}"

    def _tier_of(self, canonical: str) -> Tier | None:
        provider, _, model = canonical.partition(":")
        entry = self.catalog.lookup(provider, model)
        return entry.tier if entry is not None else None

    # -- calling ----------------------------------------------------------------------
    async def complete(self, request: Request) -> Completion:
        route = await self.decide(request)
        return await self._provider_for(request, route).complete(request)

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        route = await self.decide(request)
        async for chunk in self._provider_for(request, route).stream(request):
            yield chunk

    def _provider_for(self, request: Request, route: Route) -> Provider:
        self._emit(request, route.chain[0], route.score, route.reason)
        providers = [self.registry.resolve(route.chain[0].spec)]
        tiers_by_spec = {route.chain[0].spec: route.chain[0].tier}
        for hop in route.fallbacks:
            try:
                provider = self.registry.resolve(hop.spec)
            except ConfigError as error:  # e.g. a missing optional SDK: not this call's fault
                self._emit(request, hop, route.score, f"fallback unavailable: {error}")
                continue
            providers.append(provider)
            tiers_by_spec[provider.spec] = hop.tier

        def record(failed: Provider, error: ProviderError, following: Provider) -> None:
            hop = Hop(tiers_by_spec.get(following.spec), following.spec)
            self._emit(request, hop, route.score, fallback_reason(failed.spec, error))

        return FallbackProvider(providers, on_fallback=record)

    def _emit(self, request: Request, hop: Hop, complexity: float, reason: str) -> None:
        if self.sink is None:
            return
        self.sink.emit(
            RouteDecision(
                task_id=str(request.metadata.get("task_id", "-")),
                persona=request.context.persona,
                model=hop.spec,
                tier=hop.tier or "explicit",
                score=complexity,
                reason=reason,
            )
        )
