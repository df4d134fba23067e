"""The cache manager: one waterfall over the three layers, with metrics and health.

A lookup asks L2 (exact, microseconds, never wrong) first and L3 (semantic, milliseconds,
verified) only when L2 misses; it also reports L1, the provider's prompt cache, which never
answers a request but tells what the call will cost. A store writes L2 and L3 at once.

Every layer fails open: a backend that is down makes its layer miss (counted as an error,
health "degraded") and the request is still served by the provider; when the backend
comes back the next operation simply succeeds, with no restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any

from helios.breaker import CircuitBreaker
from helios.cache.backends.base import CacheBackend
from helios.cache.exact import NO_PERSONA, CachedReply, ExactCache
from helios.cache.metrics import LayerMetrics, PersonaMetrics
from helios.cache.prompt import (
    TTL_SECONDS,
    L1Savings,
    PlannedRequest,
    PromptCachePlanner,
    WarmPrefixes,
    expected_savings,
    savings,
)
from helios.cache.reports import (
    LAYERS,
    CacheHealth,
    CacheLookup,
    L1Report,
    Layer,
    LayerHealth,
    LayerReport,
    PlannedCall,
    l1_off,
)
from helios.cache.semantic import SemanticCache, SemanticLookup
from helios.catalog import Catalog
from helios.errors import CacheBackendError, HeliosError
from helios.messages import CacheTTL, Completion, Request

logger = logging.getLogger(__name__)

_PROBE_KEY = "health:probe"


class CacheManager:
    """L1 report + L2 → L3 waterfall; stores to every enabled layer; fails open."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        exact: ExactCache | None = None,
        semantic: SemanticCache | None = None,
        planner: PromptCachePlanner | None = None,
        warm: WarmPrefixes | None = None,
        kind_of: Callable[[str], str] = lambda name: name,
    ) -> None:
        """``kind_of`` maps a provider name to its adapter kind (a named OpenAI-compatible
        endpoint caches like OpenAI); the registry's :meth:`kind_of` in the engine."""
        self.catalog = catalog
        self.exact = exact
        self.semantic = semantic
        self.planner = planner
        self.warm = warm
        self.kind_of = kind_of
        self.metrics: dict[Layer, LayerMetrics] = {layer: LayerMetrics() for layer in LAYERS}
        self.personas: dict[str, PersonaMetrics] = {}
        """Per persona (the call context's; ``-`` for calls without one)."""
        self.total_lookups = 0
        self._last_error: dict[Layer, str | None] = dict.fromkeys(LAYERS)
        self.unavailable: dict[Layer, str] = {}
        """Layers the settings enable but this installation cannot run, and why."""

    @property
    def backend(self) -> CacheBackend | None:
        """The L2 store, which other caches (evidence) share; ``None`` without L2."""
        return self.exact.backend if self.exact is not None else None

    def tier_of(self, provider: str, model: str) -> str:
        """The catalogue tier, which L3 contexts share; an unknown model is its own tier."""
        entry = self.catalog.lookup(provider, model)
        return entry.tier if entry is not None else f"{provider}:{model}"

    def layers_for(self, request: Request) -> tuple[Layer, ...]:
        """The answering layers a lookup of ``request`` consults, in order."""
        layers: list[Layer] = []
        if self.exact is not None:
            layers.append("L2")
        if self.semantic is not None and self.semantic.skip_reason(request) is None:
            layers.append("L3")
        return tuple(layers)

    # -- lookup ---------------------------------------------------------------------------
    async def lookup(
        self,
        request: Request,
        provider: str,
        model: str,
        *,
        use_l1: bool = True,
        use_l2: bool = True,
        use_l3: bool = True,
        similarity_threshold: float | None = None,
        max_age_s: float | None = None,
    ) -> CacheLookup:
        """L2, then L3 when L2 misses; ``provider``/``model`` as resolved from the spec.
        ``max_age_s``: an entry older than this does not answer (HTTP ``max-age``)."""
        started = time.perf_counter()
        self.total_lookups += 1
        l1 = await self._l1_report(request, provider, model) if use_l1 else l1_off("not asked")
        key: str | None = None
        reply: CachedReply | None = None
        layer: Layer | None = None
        confidence: float | None = None
        l2 = LayerReport(self.exact is not None, False, False, 0.0, "disabled")
        if self.exact is not None:
            key = self.exact.key_for(request, provider, model)
            if use_l2:
                reply, l2 = await self._l2_lookup(key, request, max_age_s)
                if reply is not None:
                    layer, confidence = "L2", 1.0
            else:
                l2 = LayerReport(True, False, False, 0.0, "not asked")
        l3 = LayerReport(self.semantic is not None, False, False, 0.0, "disabled")
        if self.semantic is not None:
            if reply is not None:
                l3 = LayerReport(True, False, False, 0.0, "L2 answered")
            elif not use_l3:
                l3 = LayerReport(True, False, False, 0.0, "not asked")
            else:
                tier = self.tier_of(provider, model)
                found, l3 = await self._l3_lookup(request, tier, similarity_threshold, max_age_s)
                if found.hit is not None:
                    reply, layer, confidence = found.hit.reply, "L3", found.hit.confidence
                    if key is not None and use_l2 and self._aliases(request):
                        # the same wording again is then an L2 hit: no embedding, no search
                        await self._store_l2(key, request, found.hit.reply)
        tokens_saved, cost_saved = 0, 0.0
        persona = self.personas.setdefault(request.context.persona or NO_PERSONA, PersonaMetrics())
        persona.lookups += 1
        if reply is not None and layer is not None:
            tokens_saved, cost_saved = self._saved(reply)
            metrics = self.metrics[layer]
            metrics.tokens_saved += tokens_saved
            metrics.cost_saved_usd += cost_saved
            persona.hits[layer] = persona.hits.get(layer, 0) + 1
            persona.tokens_saved += tokens_saved
            persona.cost_saved_usd += cost_saved
            persona.time_saved_s += reply.duration_s or 0.0
        return CacheLookup(
            reply=reply,
            layer=layer,
            confidence=confidence,
            key=key,
            provider=provider,
            model=model,
            l1=l1,
            l2=l2,
            l3=l3,
            lookup_time_ms=(time.perf_counter() - started) * 1000,
            tokens_saved=tokens_saved,
            cost_saved_usd=cost_saved,
        )

    async def _l2_lookup(
        self, key: str, request: Request, max_age_s: float | None
    ) -> tuple[CachedReply | None, LayerReport]:
        assert self.exact is not None
        metrics = self.metrics["L2"]
        counts = self.exact.stats.of(request.context.persona)  # the counters this lookup moves
        errors_before = counts.errors
        started = time.perf_counter()
        reply = await self.exact.lookup(key, persona=request.context.persona)
        elapsed_ms = (time.perf_counter() - started) * 1000
        metrics.lookups += 1
        metrics.times_ms.append(elapsed_ms)
        error = None
        if counts.errors > errors_before:
            metrics.errors += 1
            error = f"{self.exact.backend.name} unavailable"
            self._last_error["L2"] = error
        else:
            self._last_error["L2"] = None
        if reply is not None and _too_old(reply, max_age_s):
            return None, LayerReport(True, True, False, elapsed_ms, "entry older than max-age")
        if reply is not None:
            metrics.hits += 1
            return reply, LayerReport(True, True, True, elapsed_ms, "exact match")
        reason = "backend error: miss" if error else "no entry"
        return None, LayerReport(True, True, False, elapsed_ms, reason, error=error)

    async def _l3_lookup(
        self, request: Request, tier: str, threshold: float | None, max_age_s: float | None
    ) -> tuple[SemanticLookup, LayerReport]:
        assert self.semantic is not None
        started = time.perf_counter()
        found = await self.semantic.lookup(request, tier, threshold=threshold)
        if found.hit is not None and _too_old(found.hit.reply, max_age_s):
            aged = found.hit.similarity
            found = replace(
                found, hit=None, reason="entry older than max-age", best_similarity=aged
            )
        elapsed_ms = (time.perf_counter() - started) * 1000
        if found.checked:
            metrics = self.metrics["L3"]
            metrics.lookups += 1
            metrics.times_ms.append(elapsed_ms)
            if found.hit is not None:
                metrics.hits += 1
            if found.error is not None:
                metrics.errors += 1
            self._last_error["L3"] = found.error
        similarity = found.hit.similarity if found.hit is not None else found.best_similarity
        report = LayerReport(
            enabled=True,
            checked=found.checked,
            hit=found.hit is not None,
            time_ms=elapsed_ms,
            reason=found.reason,
            similarity=similarity,
            error=found.error,
        )
        return found, report

    async def _l1_report(self, request: Request, provider: str, model: str) -> L1Report:
        if self.planner is None:
            return l1_off("disabled")
        return (await self.plan_call(request, provider, model)).report

    async def plan_call(self, request: Request, provider: str, model: str) -> PlannedCall:
        """L1 for a call about to go to ``provider:model``: the request with its
        breakpoints (or key), and whether its prefix is warm; planned once, counted once."""
        if self.planner is None:
            return PlannedCall(None, l1_off("disabled"))
        planned = self.planner.plan(request, self.kind_of(provider), model)
        if planned.prefix_hash is None or planned.prefix_tokens == 0:
            report = L1Report(False, False, planned.prefix_hash, 0, 0.0, planned.reason)
            return PlannedCall(planned, report)
        warm = await self._is_warm(planned.prefix_hash)
        entry = self.catalog.lookup(provider, model)
        expected = expected_savings(planned, entry, warm) if entry is not None else 0.0
        metrics = self.metrics["L1"]
        metrics.lookups += 1
        if warm:
            metrics.hits += 1
        reason = f"prefix warm: {planned.reason}" if warm else f"prefix cold: {planned.reason}"
        report = L1Report(True, warm, planned.prefix_hash, planned.prefix_tokens, expected, reason)
        return PlannedCall(planned, report)

    async def _is_warm(self, prefix_hash: str) -> bool:
        if self.warm is None:
            return False
        try:
            warm = await self.warm.is_warm(prefix_hash)
        except CacheBackendError as exc:
            self._record_error("L1", exc)
            return False
        self._last_error["L1"] = None
        return warm

    # -- L1 around the provider call ------------------------------------------------------
    def plan(self, request: Request, provider: str, model: str) -> PlannedRequest | None:
        """The request with prompt-cache breakpoints / key for ``provider:model``."""
        if self.planner is None:
            return None
        return self.planner.plan(request, self.kind_of(provider), model)

    async def record_call(
        self, planned: PlannedRequest | None, completion: Completion
    ) -> L1Savings | None:
        """After a provider call: mark its prefix warm when the usage shows the provider
        cached it, and price what the prompt cache saved (``None`` when it did nothing)."""
        usage = completion.usage
        if not (usage.cache_read_tokens or usage.cache_write_tokens):
            return None
        if planned is not None and self.warm is not None and self.planner is not None:
            try:
                await self.warm.record(planned, usage, self._ttl())
            except CacheBackendError as exc:
                self._record_error("L1", exc)
        entry = self.catalog.lookup(completion.provider, completion.model)
        if entry is None:
            return None
        saved = savings(usage, entry)
        metrics = self.metrics["L1"]
        metrics.tokens_saved += usage.cache_read_tokens
        metrics.cost_saved_usd += saved.net_usd
        return saved

    def _ttl(self) -> CacheTTL:
        return self.planner.ttl if self.planner is not None else "5m"

    # -- store ----------------------------------------------------------------------------
    async def store(
        self,
        request: Request,
        provider: str,
        model: str,
        reply: CachedReply,
        *,
        key: str | None = None,
        layers: Iterable[Layer] = ("L2", "L3"),
    ) -> tuple[Layer, ...]:
        """Write ``reply`` to the asked layers at once; the layers that stored it.

        ``L1`` marks the request's stable prefix warm (the caller reports that it made the
        call, so the provider now holds the prefix); it is stored only when the prefix is
        long enough for the provider to cache at all.
        """
        wanted = set(layers)
        jobs: dict[Layer, Awaitable[bool]] = {}
        if "L2" in wanted and self.exact is not None:
            l2_key = key if key is not None else self.exact.key_for(request, provider, model)
            jobs["L2"] = self._store_l2(l2_key, request, reply)
        if "L3" in wanted and self.semantic is not None:
            jobs["L3"] = self._store_l3(request, self.tier_of(provider, model), reply)
        if "L1" in wanted:
            jobs["L1"] = self._store_l1(request, provider, model)
        results = await asyncio.gather(*jobs.values())
        stored = tuple(layer for layer, ok in zip(jobs, results, strict=True) if ok)
        for layer in stored:
            self.metrics[layer].stores += 1
        return tuple(layer for layer in LAYERS if layer in stored)

    async def _store_l2(self, key: str, request: Request, reply: CachedReply) -> bool:
        assert self.exact is not None
        counts = self.exact.stats.of(request.context.persona)
        errors_before = counts.errors
        stored = await self.exact.store(
            key, reply, persona=request.context.persona, ttl_s=request.cache.ttl_s
        )
        if counts.errors > errors_before:
            self.metrics["L2"].errors += 1
            self._last_error["L2"] = f"{self.exact.backend.name} unavailable"
        return stored

    def _aliases(self, request: Request) -> bool:
        """Whether an L3 hit is also kept under the request's own L2 key (an exact alias)."""
        return (
            self.semantic is not None and self.semantic.settings.alias_hits and request.cache.store
        )

    async def _store_l3(self, request: Request, tier: str, reply: CachedReply) -> bool:
        assert self.semantic is not None
        errors_before = self.semantic.counts.errors
        stored = await self.semantic.store(request, tier, reply, ttl_s=request.cache.ttl_s)
        if self.semantic.counts.errors > errors_before:
            self.metrics["L3"].errors += 1
            self._last_error["L3"] = f"{self.semantic.index.name} unavailable"
        return stored

    async def _store_l1(self, request: Request, provider: str, model: str) -> bool:
        planned = self.plan(request, provider, model)
        if planned is None or planned.prefix_hash is None or not planned.prefix_tokens:
            return False
        if self.warm is None:
            return False
        try:
            await self.warm.mark(planned.prefix_hash, TTL_SECONDS[self._ttl()])
        except CacheBackendError as exc:
            self._record_error("L1", exc)
            return False
        return True

    # -- operations -----------------------------------------------------------------------
    async def invalidate(
        self,
        *,
        layer: Layer | None = None,
        key: str | None = None,
        tenant: str | None = None,
        task_type: str | None = None,
    ) -> dict[Layer, int]:
        """Remove entries from one layer or all; counts per layer. A ``key`` is an L2 key.

        Raises :class:`~helios.errors.CacheBackendError` when a store cannot be purged.
        """
        removed: dict[Layer, int] = {}
        if layer in (None, "L2") and self.exact is not None:
            removed["L2"] = await self.exact.invalidate(key=key, tenant=tenant, task_type=task_type)
        if layer in (None, "L3") and self.semantic is not None and key is None:
            removed["L3"] = await self.semantic.invalidate(tenant=tenant, task_type=task_type)
        # warm prefixes belong to no tenant or task type: only a full purge drops them
        everything = key is None and tenant is None and task_type is None
        if layer in (None, "L1") and self.warm is not None and everything:
            removed["L1"] = await self.warm.backend.delete_prefix("l1:")
        return removed

    async def entries(self) -> dict[Layer, int | None]:
        """Live entries per layer (``None``: the layer's store could not be counted)."""
        counts: dict[Layer, int | None] = dict.fromkeys(LAYERS, 0)
        probes: dict[Layer, Callable[[], Awaitable[int]]] = {}
        if self.warm is not None:
            warm = self.warm
            probes["L1"] = lambda: warm.backend.count("l1:")
        if self.exact is not None:
            exact = self.exact
            probes["L2"] = lambda: exact.backend.count("l2:")
        if self.semantic is not None:
            semantic = self.semantic

            async def l3_entries() -> int:
                return (await semantic.index.stats()).entries

            probes["L3"] = l3_entries
        for layer, probe in probes.items():
            try:
                counts[layer] = await probe()
            except CacheBackendError as exc:
                self._record_error(layer, exc)
                counts[layer] = None
        return counts

    async def health(self) -> CacheHealth:
        """Probe each store now; a layer is degraded while its store fails."""
        layers: dict[Layer, LayerHealth] = {}
        l2_backend = self.exact.backend if self.exact is not None else None
        l1_backend = self.warm.backend if self.warm is not None else None
        layers["L1"] = await self._probe_backend("L1", l1_backend, self.planner is not None)
        layers["L2"] = await self._probe_backend("L2", l2_backend, True)
        if self.semantic is None:
            detail = self.unavailable.get("L3", "L3 is disabled")
            layers["L3"] = LayerHealth("disabled", None, detail)
        else:
            index = self.semantic.index
            try:
                await index.ping()
            except HeliosError as exc:
                self._record_error("L3", exc)
                layers["L3"] = LayerHealth("degraded", index.name, str(exc), _state(index.breaker))
            else:
                self._last_error["L3"] = None
                layers["L3"] = LayerHealth("ok", index.name, "reachable", _state(index.breaker))
        return CacheHealth(layers)

    async def _probe_backend(
        self, layer: Layer, backend: CacheBackend | None, enabled: bool
    ) -> LayerHealth:
        if backend is None or not enabled:
            return LayerHealth("disabled", None, f"{layer} is disabled")
        try:
            await backend.get(_PROBE_KEY)
        except CacheBackendError as exc:
            self._record_error(layer, exc)
            return LayerHealth("degraded", backend.name, str(exc), _state(backend.breaker))
        self._last_error[layer] = None
        detail = (
            "reachable, read-only: hits served, stores skipped"
            if backend.read_only
            else "reachable"
        )
        return LayerHealth("ok", backend.name, detail, _state(backend.breaker))

    def breakers(self) -> dict[Layer, dict[str, Any]]:
        """The circuit breaker of each layer's network store (see :mod:`helios.breaker`)."""
        stores: dict[Layer, CircuitBreaker | None] = {
            "L1": self.warm.backend.breaker if self.warm is not None else None,
            "L2": self.exact.backend.breaker if self.exact is not None else None,
            "L3": self.semantic.index.breaker if self.semantic is not None else None,
        }
        found: dict[Layer, dict[str, Any]] = {}
        for layer, breaker in stores.items():
            if breaker is not None:
                found[layer] = breaker.snapshot()
        return found

    def snapshot(self) -> dict[str, Any]:
        """The reference design's metric fields plus per-layer detail, as plain data."""
        answering = [self.metrics["L2"], self.metrics["L3"]]
        hits = sum(m.hits for m in answering)
        return {
            "total_lookups": self.total_lookups,
            "total_hits": hits,
            "overall_hit_rate": hits / self.total_lookups if self.total_lookups else 0.0,
            "l1_hit_rate": self.metrics["L1"].hit_rate,
            "l2_hit_rate": self.metrics["L2"].hit_rate,
            "l3_hit_rate": self.metrics["L3"].hit_rate,
            "total_tokens_saved": sum(m.tokens_saved for m in self.metrics.values()),
            "total_cost_saved": sum(m.cost_saved_usd for m in self.metrics.values()),
            "l3_average_similarity": (
                self.semantic.counts.average_similarity if self.semantic is not None else None
            ),
            "layers": {layer: m.snapshot() for layer, m in self.metrics.items()},
            "personas": {name: m.snapshot() for name, m in sorted(self.personas.items())},
            "last_errors": {layer: e for layer, e in self._last_error.items() if e is not None},
            "breakers": self.breakers(),
        }

    async def aclose(self) -> None:
        # L1's warm prefixes share the L2 backend (closed with it) unless given their own
        closers = []
        if self.exact is not None:
            closers.append(self.exact.aclose())
        if self.semantic is not None:
            closers.append(self.semantic.aclose())
        if self.warm is not None and self.warm.backend is not self.backend:
            closers.append(self.warm.backend.aclose())
        for closing in closers:
            await closing

    def _saved(self, reply: CachedReply) -> tuple[int, float]:
        usage = reply.usage
        tokens = usage.input_tokens + usage.output_tokens + usage.cache_read_tokens
        tokens += usage.cache_write_tokens
        entry = self.catalog.lookup(reply.provider, reply.model)
        return tokens, entry.cost(usage) if entry is not None else 0.0

    def _record_error(self, layer: Layer, exc: BaseException) -> None:
        self.metrics[layer].errors += 1
        self._last_error[layer] = str(exc)
        logger.warning("%s cache unavailable: %s", layer, exc)


def _state(breaker: CircuitBreaker | None) -> str | None:
    return breaker.state if breaker is not None else None


def _too_old(reply: CachedReply, max_age_s: float | None) -> bool:
    return max_age_s is not None and time.time() - reply.created_at > max_age_s
