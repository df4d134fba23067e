"""The engine: the one place that composes the parts of a model call.

One call is request -> cache (L2 exact, then L3 semantic) -> provider -> completion, timed
around the provider (TTFT and duration) and priced from the catalogue. A cache hit is
answered without resolving the provider at all (no SDK import, no model load) and a cached
stream replays its original chunks. On a miss, L1 places the provider's prompt-cache
breakpoints (or key) before the call and prices what the prompt cache saved after it.
Only complete replies are stored: a stream that breaks leaves no entry. Each step is its
own method so the router (inside ``_provider_for``), the governor (around the provider
call) and the ledger (an observer) slot in without reshaping the call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from helios.cache.exact import CachedReply
from helios.cache.factory import cache_manager
from helios.cache.manager import CacheLookup, CacheManager
from helios.cache.prompt import PlannedRequest
from helios.catalog import Catalog, Tier
from helios.config.settings import Settings
from helios.errors import BudgetExceeded
from helios.governance.governor import Governor, Priority, Reservation
from helios.governance.router import EconomicRouter, ObservationSource
from helios.ledger.sink import EventSink
from helios.messages import Chunk, Completion, Request
from helios.providers.base import Provider, StreamAssembler
from helios.providers.registry import ProviderRegistry

_MAX_ADMISSION_ROUNDS = 4  # a downgrade or a wait, then ask again; never loop forever


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What an observer learns about one finished (or failed) call."""

    request: Request
    provider: str
    model: str
    completion: Completion | None
    """Set on success; ``completion.cache_layer`` tells a cache hit from a provider call."""
    error: BaseException | None
    engine_s: float
    """Seconds spent in the engine for this call, provider time included."""


class CallObserver(Protocol):
    """Told about every call once it ends; must not block (the ledger queues its writes)."""

    def on_call(self, record: CallRecord) -> None: ...


class Engine:
    def __init__(
        self,
        registry: ProviderRegistry,
        catalog: Catalog,
        *,
        cache: CacheManager | None = None,
        governor: Governor | None = None,
        tiers: Mapping[Tier, str] | None = None,
        observers: Sequence[CallObserver] = (),
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.cache = cache
        self.governor = governor
        self.tiers = dict(tiers or {})
        self.observers = list(observers)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        sink: EventSink | None = None,
        observations: ObservationSource | None = None,
        observers: Sequence[CallObserver] = (),
    ) -> Engine:
        """The engine the settings describe. ``sink`` receives routing and budget events;
        ``observations`` (model health from the ledger) steer the router away from failing
        models."""
        catalog = Catalog.load(settings.catalog_files)
        registry = ProviderRegistry(settings, catalog)
        # "auto" (as a model spec) lets the economic router choose per call
        router = EconomicRouter(
            registry,
            catalog,
            settings.tiers,
            settings.router,
            observations=observations,
            sink=sink,
        )
        registry.add(router)
        registry.alias("auto", router.spec)
        governor = (
            Governor.from_settings(settings.governor, catalog, sink=sink)
            if settings.governor.enabled and settings.governor.budgets
            else None
        )
        return cls(
            registry,
            catalog,
            cache=cache_manager(settings, catalog, kind_of=registry.kind_of),
            governor=governor,
            tiers=settings.tiers,
            observers=observers,
        )

    async def complete(self, request: Request) -> Completion:
        """The whole reply in one piece (the provider's non-streaming call)."""
        started = time.perf_counter()
        lookup = await self._lookup(request)
        if lookup is not None and lookup.reply is not None:
            elapsed = time.perf_counter() - started
            completion = self._from_cache(lookup, elapsed, elapsed, streamed=False)
            self._notify(request, completion.provider, completion.model, completion, None, started)
            return completion
        provider, reservation = await self._admit(request, self._provider_for(request))
        planned = await self._plan(request, provider)
        try:
            reply = await provider.complete(_sent(request, planned))
        except BaseException as exc:
            await self._release(reservation)
            self._notify(request, provider.name, provider.model, None, exc, started)
            raise
        elapsed = time.perf_counter() - started
        completion = self._finish(reply, ttft_s=elapsed, duration_s=elapsed, streamed=False)
        completion = await self._after_call(planned, completion)
        await self._commit(reservation, completion)
        await self._store(lookup, request, completion, None)
        self._notify(request, provider.name, provider.model, completion, None, started)
        return completion

    def stream(self, request: Request) -> CompletionStream:
        """The reply as it is generated; ``.completion`` is set once the stream is consumed."""
        return CompletionStream(self, request)

    async def aclose(self) -> None:
        await self.registry.aclose()
        if self.governor is not None:
            await self.governor.close()
        if self.cache is not None:
            await self.cache.aclose()

    # -- the steps of one call ----------------------------------------------------------
    async def _lookup(self, request: Request) -> CacheLookup | None:
        """The waterfall lookup (``None`` without a cache); parsing the spec imports nothing."""
        if self.cache is None:
            return None
        provider, model = self.registry.parse(request.model)
        return await self.cache.lookup(request, provider, model)

    async def _plan(self, request: Request, provider: Provider) -> PlannedRequest | None:
        """L1: the request with prompt-cache breakpoints (or key) for the model it goes to."""
        if self.cache is None or self.cache.planner is None:
            return None
        name, model = await self._concrete(request, provider)
        return self.cache.plan(request, name, model)

    async def _after_call(
        self, planned: PlannedRequest | None, completion: Completion
    ) -> Completion:
        """Mark a prefix the provider cached as warm; report what its cache saved."""
        if self.cache is None:
            return completion
        saved = await self.cache.record_call(planned, completion)
        if saved is None:
            return completion
        return completion.model_copy(update={"saved_usd": saved.net_usd})

    async def _store(
        self,
        lookup: CacheLookup | None,
        request: Request,
        completion: Completion,
        chunks: Sequence[str] | None,
    ) -> None:
        if lookup is None or self.cache is None:
            return
        if completion.finish_reason not in ("stop", "length"):
            return
        reply = CachedReply.from_completion(completion, chunks, created_at=time.time())
        # stored under the spec's resolution, where the next lookup of this request looks
        await self.cache.store(request, lookup.provider, lookup.model, reply, key=lookup.key)

    def _from_cache(
        self, lookup: CacheLookup, ttft_s: float, duration_s: float, *, streamed: bool
    ) -> Completion:
        assert lookup.reply is not None
        return lookup.reply.to_completion().model_copy(
            update={
                "ttft_s": ttft_s,
                "duration_s": duration_s,
                "cost_usd": 0.0,
                "saved_usd": lookup.cost_saved_usd,
                "streamed": streamed,
                "cache_layer": lookup.layer,
            }
        )

    def _provider_for(self, request: Request) -> Provider:
        return self.registry.resolve(request.model)

    async def _admit(
        self, request: Request, provider: Provider
    ) -> tuple[Provider, Reservation | None]:
        """Ask the governor: go ahead, go cheaper, wait, or refuse (``BudgetExceeded``).

        A deferred call waits in its own coroutine, so other calls carry on meanwhile.
        """
        if self.governor is None:
            return provider, None
        priority: Priority = "high" if request.metadata.get("priority") == "high" else "normal"
        for _ in range(_MAX_ADMISSION_ROUNDS):
            name, model = await self._concrete(request, provider)
            reservation = await self.governor.reserve(request, name, model, priority=priority)
            if reservation.decision == "allow":
                return provider, reservation
            if reservation.decision == "defer":
                await asyncio.sleep(reservation.eta_s or 0.0)
            elif reservation.suggested_tier in self.tiers:  # downgrade
                provider = self.registry.resolve(self.tiers[reservation.suggested_tier])
            else:
                break
        raise BudgetExceeded(
            f"no budget for {request.model or 'the default model'} after "
            f"{_MAX_ADMISSION_ROUNDS} tries",
            account="-",
            window="-",
            resets_at=None,
        )

    async def _concrete(self, request: Request, provider: Provider) -> tuple[str, str]:
        """The provider and model a call will really use: the router's choice for ``auto``."""
        if isinstance(provider, EconomicRouter):
            name, _, model = (await provider.decide(request)).model.partition(":")
            return name, model
        return provider.name, provider.model

    async def _commit(self, reservation: Reservation | None, completion: Completion) -> None:
        if reservation is not None and self.governor is not None:
            await self.governor.commit(reservation, completion.usage)

    async def _release(self, reservation: Reservation | None) -> None:
        if reservation is not None and self.governor is not None:
            await self.governor.release(reservation)

    def _finish(
        self, reply: Completion, *, ttft_s: float, duration_s: float, streamed: bool
    ) -> Completion:
        entry = self.catalog.lookup(reply.provider, reply.model)
        return reply.model_copy(
            update={
                "ttft_s": ttft_s,
                "duration_s": duration_s,
                "cost_usd": entry.cost(reply.usage) if entry is not None else None,
                "streamed": streamed,
            }
        )

    def _notify(
        self,
        request: Request,
        provider: str,
        model: str,
        completion: Completion | None,
        error: BaseException | None,
        started: float,
    ) -> None:
        if not self.observers:
            return
        record = CallRecord(
            request=request,
            provider=provider,
            model=model,
            completion=completion,
            error=error,
            engine_s=time.perf_counter() - started,
        )
        for observer in self.observers:
            observer.on_call(record)


class CompletionStream:
    """An async iterable of chunks; after it is exhausted, ``completion`` holds the result.

    TTFT is the time from the start of iteration to the first chunk that carries text.
    """

    def __init__(self, engine: Engine, request: Request) -> None:
        self._engine = engine
        self.request = request
        self.completion: Completion | None = None

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._run()

    async def _run(self) -> AsyncIterator[Chunk]:
        engine = self._engine
        started = time.perf_counter()
        lookup = await engine._lookup(self.request)
        if lookup is not None and lookup.reply is not None:
            async for chunk in self._replay(lookup, started):
                yield chunk
            return
        provider, reservation = await engine._admit(
            self.request, engine._provider_for(self.request)
        )
        planned = await engine._plan(self.request, provider)
        assembler = StreamAssembler(provider.name, provider.model)
        ttft_s: float | None = None
        try:
            async for chunk in provider.stream(_sent(self.request, planned)):
                if ttft_s is None and chunk.text:
                    ttft_s = time.perf_counter() - started
                assembler.add(chunk)
                yield chunk
        except BaseException as exc:
            await engine._release(reservation)
            engine._notify(self.request, provider.name, provider.model, None, exc, started)
            raise
        duration_s = time.perf_counter() - started
        completion = engine._finish(
            assembler.completion(),
            ttft_s=duration_s if ttft_s is None else ttft_s,
            duration_s=duration_s,
            streamed=True,
        )
        self.completion = await engine._after_call(planned, completion)
        await engine._commit(reservation, self.completion)
        await engine._store(lookup, self.request, self.completion, assembler.parts)
        engine._notify(self.request, provider.name, provider.model, self.completion, None, started)

    async def _replay(self, lookup: CacheLookup, started: float) -> AsyncIterator[Chunk]:
        """The cached reply chunk by chunk, as its original stream delivered it."""
        cached = lookup.reply
        assert cached is not None
        ttft_s: float | None = None
        for chunk in cached.replay():
            if ttft_s is None and chunk.text:
                ttft_s = time.perf_counter() - started
            yield chunk
        duration_s = time.perf_counter() - started
        engine = self._engine
        self.completion = engine._from_cache(
            lookup, duration_s if ttft_s is None else ttft_s, duration_s, streamed=True
        )
        engine._notify(self.request, cached.provider, cached.model, self.completion, None, started)


def _sent(request: Request, planned: PlannedRequest | None) -> Request:
    """What goes to the provider: the request with L1's breakpoints when it planned some."""
    return planned.request if planned is not None else request
