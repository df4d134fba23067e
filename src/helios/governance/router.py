"""The economic router: a policy that decides where a call goes, calling no model.

:meth:`EconomicRouter.decide` returns a :class:`Route` (tier, model, fallbacks and why);
the engine asks it once per call that reaches a provider, reserves budget for that route,
plans L1 for it and calls it. The steps of a decision:

1. **Explicit models win.** A request whose spec names a model (anything but ``auto``)
   goes to that model: no scoring, no fallbacks.
2. **Complexity** (:mod:`helios.governance.complexity`) gives a score and an intent; the
   settings' thresholds and ``local_intents`` turn them into a tier, and ``tiers``
   (``settings.tiers``) into a model spec. The route keeps the features, the intent with
   the cue that gave it away and the rule that picked the tier, to explain itself.
3. **Readiness**: a tier whose model cannot run here (SDK not installed, no API key, no
   local model file) is passed over for the next tier of its fallback list, and the route
   says so. ``auto`` therefore works offline: it falls to the local model.
4. **Health**: a model whose error rate is above ``avoid_error_rate_above`` over at least
   ``min_observations`` calls (from :class:`ObservationSource`) is passed over the same way,
   unless no healthy alternative is left.

The remaining tiers, in order, are the route's chain: the engine tries the next one when a
model fails in a way another may not (see :mod:`helios.governance.fallback`). When the
governor has no room for the chosen model it asks for a cheaper tier, and
:meth:`EconomicRouter.downgrade` gives the route from that tier on.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from helios.catalog import Catalog, Tier
from helios.config.router import RouterSettings
from helios.errors import ConfigError
from helios.governance.complexity import Complexity, score
from helios.ledger.events import ErrorEvent, Event, PersonaLLMRun, RouteDecision
from helios.messages import Request
from helios.providers.registry import AUTO_SPEC, ProviderRegistry

TIER_ORDER: tuple[Tier, ...] = ("local", "fast", "strong")
Assessor = Callable[[Request, RouterSettings], Complexity]
"""How a request's complexity and scored tier are found: :func:`complexity.score` unless a
caller (a benchmark comparing policies) passes another."""
NO_BUDGET = "no budget configured"


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
    """Where a call goes and why; ``chain[0]`` is the model called first."""

    tier: Tier | None
    model: str
    """The canonical ``provider:model`` spec called first."""
    score: float
    reason: str
    chain: tuple[Hop, ...]
    features: dict[str, float] = field(default_factory=dict)
    contributions: dict[str, float] = field(default_factory=dict)
    scored_tier: Tier | None = None
    """The tier the score alone picked, before readiness, health and budget."""
    budget: str = NO_BUDGET
    skipped: tuple[str, ...] = ()
    """Why tiers were passed over (not ready, unhealthy)."""
    explicit: bool = False
    intent: str | None = None
    cue: str | None = None
    """The words that gave the intent away."""
    rule: str = ""
    """Why the score and intent picked ``scored_tier``."""

    @property
    def fallbacks(self) -> tuple[Hop, ...]:
        return self.chain[1:]

    def with_budget(self, budget: str) -> Route:
        """The same route with what the governor said of it."""
        return replace(self, budget=budget)


class EconomicRouter:
    def __init__(
        self,
        registry: ProviderRegistry,
        catalog: Catalog,
        tiers: Mapping[Tier, str],
        settings: RouterSettings | None = None,
        *,
        observations: ObservationSource | None = None,
        assess: Assessor = score,
    ) -> None:
        for tier, spec in tiers.items():
            if spec in ("auto", AUTO_SPEC):
                raise ConfigError(f"tiers.{tier}: '{spec}' would route to the router itself")
        self.registry = registry
        self.catalog = catalog
        self.tiers = dict(tiers)
        self.settings = settings or RouterSettings()
        self.observations = observations
        self.assess = assess
        # spec, tools -> when its "ready" was seen (see _unready)
        self._ready_seen: dict[tuple[str, bool], float] = {}

    def decide(self, request: Request) -> Route:
        """Where ``request`` goes and why; calls no model."""
        if not self.registry.is_auto(request.model):
            spec = self.registry.canonical(request.model)
            tier = self._tier_of(spec)
            return Route(
                tier=tier,
                model=spec,
                score=0.0,
                reason=f"explicit model '{request.model or spec}'",
                chain=(Hop(tier, spec),),
                scored_tier=tier,
                explicit=True,
            )
        complexity = self.assess(request, self.settings)
        scored = complexity.tier
        chain, skipped = self._chain_from(scored, tools=uses_tools(request))
        cue = f" '{complexity.cue}'" if complexity.cue else ""
        reasons = [
            f"score {complexity.score:.2f} -> {scored} (intent {complexity.intent}{cue})",
            *skipped,
        ]
        return Route(
            tier=chain[0].tier,
            model=chain[0].spec,
            score=complexity.score,
            reason="; ".join(reasons),
            chain=chain,
            features=complexity.features,
            contributions=complexity.contributions,
            scored_tier=scored,
            skipped=tuple(skipped),
            intent=complexity.intent,
            cue=complexity.cue,
            rule=complexity.rule,
        )

    def downgrade(self, route: Route, tier: Tier, why: str, *, tools: bool = False) -> Route:
        """``route`` moved to the cheaper ``tier`` (the governor's answer), with its own
        fallbacks; ``why`` says which budget asked; ``tools``: the call offers tools."""
        chain, skipped = self._chain_from(tier, tools=tools)
        was = route.tier or route.model
        return replace(
            route,
            tier=chain[0].tier,
            model=chain[0].spec,
            chain=chain,
            reason="; ".join([route.reason, f"budget: {was} -> {tier} ({why})", *skipped]),
            skipped=route.skipped + tuple(skipped),
            budget=f"downgrade {was} -> {tier}",
            explicit=False,
        )

    def _chain_from(self, tier: Tier, *, tools: bool) -> tuple[tuple[Hop, ...], list[str]]:
        """The ready hops from ``tier`` down its fallbacks (able to call tools when the call
        offers them), the unhealthy ones passed over while a healthy one is left, and why
        each tier was passed over. When nothing in that chain can run, the cheapest tier
        above it that can takes the call (a local-scored call that offers tools, say)."""
        ready, skipped = self._ready_hops(tier, tools=tools)
        if not ready:
            for higher in TIER_ORDER[TIER_ORDER.index(tier) + 1 :]:
                ready, more = self._ready_hops(higher, tools=tools)
                if ready:
                    skipped += [*more, f"moved up to {higher}: nothing from {tier} down can answer"]
                    break
        if not ready:
            raise ConfigError(f"no model can answer 'auto' from tier {tier}: " + "; ".join(skipped))
        problems = {hop: self._unhealthy(hop.spec) for hop in ready}
        healthy = tuple(hop for hop in ready if problems[hop] is None)
        if not healthy:
            skipped.append(f"no healthy alternative: kept {ready[0].tier}")
            return tuple(ready), skipped
        skipped.extend(f"skipped {hop.tier} ({problems[hop]})" for hop in ready if problems[hop])
        return healthy, skipped

    def _ready_hops(self, tier: Tier, *, tools: bool) -> tuple[list[Hop], list[str]]:
        skipped: list[str] = []
        ready: list[Hop] = []
        for candidate in (tier, *self.settings.fallbacks.get(tier, [])):
            spec = self.registry.canonical(self._spec_of(candidate))
            if any(hop.spec == spec for hop in ready):
                continue
            problem = self._unready(spec, tools=tools)
            if problem is not None:
                skipped.append(f"skipped {candidate} ({spec}: {problem})")
            else:
                ready.append(Hop(candidate, spec))
        return ready, skipped

    def _unready(self, spec: str, *, tools: bool) -> str | None:
        """The registry's answer, a "ready" kept for ``readiness_cache_s``: probing the local
        model's file costs more than the rest of a decision, and a model that went away in
        between fails its call into the route's fallbacks. "Not ready" is never kept, so a
        key or a model added is seen on the next call."""
        now = time.monotonic()
        seen = self._ready_seen.get((spec, tools))
        if seen is not None and now - seen < self.settings.readiness_cache_s:
            return None
        problem = self.registry.unready(spec, tools=tools)
        if problem is None:
            self._ready_seen[(spec, tools)] = now
        return problem

    def _unhealthy(self, spec: str) -> str | None:
        if self.observations is None:
            return None
        stats = self.observations.stats(spec)
        if stats is None or stats.calls < self.settings.min_observations:
            return None
        if stats.error_rate <= self.settings.avoid_error_rate_above:
            return None
        return f"{spec} error rate {stats.error_rate:.0%} over {stats.calls} calls"

    def _spec_of(self, tier: Tier) -> str:
        spec = self.tiers.get(tier)
        if spec is None:
            raise ConfigError(f"tiers: no model configured for tier '{tier}'")
        return spec

    def _tier_of(self, canonical: str) -> Tier | None:
        provider, _, model = canonical.partition(":")
        entry = self.catalog.lookup(provider, model)
        return entry.tier if entry is not None else None


def uses_tools(request: Request) -> bool:
    """Whether a model must be able to call tools to answer ``request``."""
    return bool(request.tools) or any(m.tool_calls or m.role == "tool" for m in request.messages)
