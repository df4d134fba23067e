"""The engine: the one place that composes one model call.

::

    lookup     the cache (L2 exact, then L3 semantic); a hit is replayed and priced as saved
    route      router.decide(request): once per call that reaches a provider
    fit        the prompt's estimated tokens (governance/estimate.py) against the model's
               context window: one that cannot fit is refused (PromptTooLong) before any
               budget is reserved or provider contacted
    admit      governor.reserve(route's model): allow / downgrade (a cheaper route) / defer
    resolve    the route's providers built (SDK imported, client made) off the event loop,
               the first one warmed (a local model loaded): all before the clock starts
    call       the route's chain (a fallback on failure), each model's L1 breakpoints placed
               just before it is called; chunks flow straight back to the caller
    finish     price what answered, commit its usage to the governor, store complete replies,
               tell the observers (the ledger's recorder turns the record into events)

``complete()`` and ``stream()`` are the same call: one path, and only the provider method
differs. A retried stream (:class:`~helios.providers.retry.RetryingProvider`) sends a
``Chunk.restart`` marker before each new attempt: the engine drops what it had assembled,
records the failed attempt, and passes the marker on to a caller that said it can start
its display over (``restartable=True``); for any other caller a stream that broke after
it had passed text on fails as before, since what that caller showed cannot be taken back.

TTFT and duration are measured from the moment the first model is called, so neither
includes resolving providers (``CallRecord.resolve_s`` has that) nor the cache
lookup; for a cache hit they are the time the caller waited for the replay.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from helios.cache.exact import CachedReply
from helios.cache.manager import CacheManager
from helios.cache.reports import CacheLookup, PlannedCall
from helios.catalog import Catalog, Tier
from helios.errors import (
    BudgetExceeded,
    ConfigError,
    PromptTooLong,
    ProviderError,
    ProviderUnavailable,
)
from helios.governance.estimate import prompt_tokens
from helios.governance.fallback import FallbackProvider
from helios.governance.governor import Governor, Reservation
from helios.governance.router import (
    NO_BUDGET,
    EconomicRouter,
    Hop,
    Route,
    fallback_reason,
    uses_tools,
)
from helios.messages import Chunk, Completion, Request, ToolCallDelta
from helios.providers.base import Provider, StreamAssembler
from helios.providers.registry import ProviderRegistry
from helios.providers.retry import failure_of

_MAX_ADMISSION_ROUNDS = 4  # a downgrade or a wait, then ask again; never loop forever


@dataclass(frozen=True, slots=True)
class Fallback:
    """One switch down a route's chain: ``failed`` failed (``reason`` says how), ``next``
    was tried."""

    failed: Hop
    reason: str
    next: Hop


@dataclass(frozen=True, slots=True)
class Retry:
    """A failed attempt of a call that was tried again: which model, and why it failed."""

    spec: str
    reason: str


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What an observer learns about one finished (or failed) call."""

    request: Request
    """As the engine ran it: its context always carries a task id."""
    provider: str
    model: str
    """Who answered (the cache's original model for a hit), or was called last."""
    completion: Completion | None
    """Set on success; ``completion.cache_layer`` tells a cache hit from a provider call."""
    error: BaseException | None
    engine_s: float
    """Seconds spent in the engine for this call, provider time included."""
    lookup: CacheLookup | None = None
    """The cache lookup (``None`` without a cache)."""
    route: Route | None = None
    """The route decided for the call; ``None`` when the cache answered first."""
    fallbacks: tuple[Fallback, ...] = ()
    unavailable: tuple[tuple[Hop, str], ...] = ()
    """Fallback hops that could not even be built (a missing SDK), and why."""
    resolve_s: float = 0.0
    """Seconds spent building and warming providers, outside TTFT."""
    retries: tuple[Retry, ...] = ()
    """The attempts that failed and were tried again, oldest first."""


class CallObserver(Protocol):
    """Told about every call once it ends; must not block (the ledger queues its writes)."""

    def on_call(self, record: CallRecord) -> None: ...


class Engine:
    def __init__(
        self,
        registry: ProviderRegistry,
        catalog: Catalog,
        *,
        router: EconomicRouter | None = None,
        cache: CacheManager | None = None,
        governor: Governor | None = None,
        tiers: Mapping[Tier, str] | None = None,
        observers: Sequence[CallObserver] = (),
    ) -> None:
        """Parts are built by :class:`~helios.runtime.Runtime`; tests may pass their own.
        Without a ``router``, ``auto`` routes over ``tiers`` with the default policy."""
        self.registry = registry
        self.catalog = catalog
        self.tiers = dict(tiers or {})
        self.router = router or EconomicRouter(registry, catalog, self.tiers)
        self.cache = cache
        self.governor = governor
        self.observers = list(observers)

    async def complete(self, request: Request) -> Completion:
        """The whole reply in one piece (the provider's non-streaming call)."""
        call = self.call(request, streaming=False)
        async for _ in call:
            pass
        assert call.completion is not None  # set when the call ends without raising
        return call.completion

    def stream(self, request: Request, *, restartable: bool = False) -> CompletionStream:
        """The reply as it is generated; ``.completion`` is set once the stream is consumed.

        ``restartable``: the caller handles ``Chunk.restart`` markers (it discards the text
        it was shown and shows the new attempt's), so a stream that breaks midway is retried
        rather than failed (see the module docstring)."""
        return self.call(request, streaming=True, restartable=restartable)

    def call(
        self, request: Request, *, streaming: bool, restartable: bool = False
    ) -> CompletionStream:
        """One call as a handle: iterate it to run it (a non-streamed call yields at most its
        replayed pieces), then read its completion, lookup, route and fallbacks."""
        return CompletionStream(_Call(self, request, streaming=streaming, restartable=restartable))

    async def aclose(self) -> None:
        """Close the providers (the runtime closes the cache and governor it built)."""
        await self.registry.aclose()

    def notify(self, record: CallRecord) -> None:
        for observer in self.observers:
            observer.on_call(record)


class CompletionStream:
    """An async iterable of chunks; after it is exhausted, ``completion`` holds the result.

    TTFT is the time from the first model call to the first chunk that carries text.
    """

    def __init__(self, call: _Call) -> None:
        self._call = call
        self.request = call.request

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._call.run()

    @property
    def completion(self) -> Completion | None:
        return self._call.completion

    @property
    def lookup(self) -> CacheLookup | None:
        """The cache lookup, once the stream has begun (``None`` without a cache)."""
        return self._call.lookup

    @property
    def route(self) -> Route | None:
        """The route, once the stream has begun (``None`` when the cache answered)."""
        return self._call.route

    @property
    def fallbacks(self) -> tuple[Fallback, ...]:
        return tuple(self._call.fallbacks)

    @property
    def retries(self) -> tuple[Retry, ...]:
        """The failed attempts that were tried again, so far."""
        return tuple(self._call.retries)


class _Call:
    """One engine call, from lookup to record; ``run()`` yields what the caller sees."""

    def __init__(
        self, engine: Engine, request: Request, *, streaming: bool, restartable: bool = False
    ) -> None:
        self.engine = engine
        if request.context.task_id is None:  # every event of a call joins a task
            # a plain copy: the id needs no validation, and this runs on every such call
            context = request.context.model_copy(update={"task_id": f"call-{uuid.uuid4().hex}"})
            request = request.model_copy(update={"context": context})
        self.request = request
        self.streaming = streaming
        self.restartable = restartable
        self.retries: list[Retry] = []
        self.completion: Completion | None = None
        self.lookup: CacheLookup | None = None
        self.route: Route | None = None
        self.fallbacks: list[Fallback] = []
        self.unavailable: list[tuple[Hop, str]] = []
        self.plans: dict[str, PlannedCall] = {}
        self.resolve_s = 0.0
        self.answered: tuple[str, str] = ("", "")

    async def run(self) -> AsyncIterator[Chunk]:
        started = time.perf_counter()
        reservation: Reservation | None = None
        try:
            self.lookup = await self._lookup()
            cached = self.lookup.reply if self.lookup is not None else None
            if cached is not None:
                ttft_s: float | None = None
                for chunk in cached.replay() if self.streaming else _whole(cached):
                    if ttft_s is None and chunk.text:
                        ttft_s = time.perf_counter() - started
                    yield chunk
                self._served_from_cache(cached, started, ttft_s)
            else:
                self.route = self.engine.router.decide(self.request)
                self._check_fits(self.route.model)
                self.route, reservation = await self._admit(self.route)
                self._check_fits(self.route.model)  # a downgrade may have changed the model
                provider, request = await self._ready(self.route)
                assembler = StreamAssembler(provider.name, provider.model)
                ttft_s = None
                called = time.perf_counter()  # the clock: the model's time, nothing before it
                if self.streaming:
                    chunks = provider.stream(request)
                    try:
                        async for chunk in chunks:
                            if chunk.restart is not None:
                                self._restarted(chunk, assembler)
                                assembler = StreamAssembler(provider.name, provider.model)
                                ttft_s = None
                                if self.restartable:
                                    yield chunk
                                continue
                            if ttft_s is None and chunk.text:
                                ttft_s = time.perf_counter() - called
                            assembler.add(chunk)
                            yield chunk
                    finally:
                        # a failed restart leaves the retrying stream before its next
                        # attempt: close it now, so that attempt is never made
                        if isinstance(chunks, AsyncGenerator):
                            await chunks.aclose()
                else:
                    try:
                        completion = await provider.complete(request)
                    except ProviderError as exc:
                        spec = f"{exc.provider}:{exc.model}"
                        self.retries.extend(Retry(spec, why) for why in exc.attempts[:-1])
                        raise
                    spec = f"{completion.provider}:{completion.model}"
                    self.retries.extend(Retry(spec, why) for why in completion.retries)
                    for chunk in _whole(completion):
                        assembler.add(chunk)
                await self._answered(assembler, called, ttft_s, reservation)
                reservation = None  # committed
        except BaseException as exc:
            if reservation is not None and self.engine.governor is not None:
                await self.engine.governor.release(reservation)
            self._record(started, exc)
            raise
        self._record(started, None)

    # -- the cache ------------------------------------------------------------------------
    async def _lookup(self) -> CacheLookup | None:
        """The waterfall lookup (``None`` without a cache); parsing the spec imports nothing.
        L1 is planned later, once, for the model the route calls."""
        cache = self.engine.cache
        if cache is None:
            return None
        provider, model = self.engine.registry.parse(self.request.model)
        allowed = self.request.cache  # the caller's directives: a miss still learns its key
        return await cache.lookup(
            self.request,
            provider,
            model,
            use_l1=False,
            use_l2=allowed.lookup,
            use_l3=allowed.lookup and allowed.semantic,
            max_age_s=allowed.max_age_s,
        )

    def _served_from_cache(self, cached: CachedReply, started: float, ttft_s: float | None) -> None:
        """The completion of a hit, timed from the start of the call: the caller's wait."""
        assert self.lookup is not None
        duration_s = time.perf_counter() - started
        self.answered = (cached.provider, cached.model)
        self.completion = cached.to_completion().model_copy(
            update={
                "ttft_s": duration_s if ttft_s is None else ttft_s,
                "duration_s": duration_s,
                "cost_usd": 0.0,
                "saved_usd": self.lookup.cost_saved_usd,
                "saved_s": cached.duration_s,
                "streamed": self.streaming,
                "cache_layer": self.lookup.layer,
            }
        )

    async def _store(self, completion: Completion, assembler: StreamAssembler | None) -> None:
        """Store a complete reply (``assembler``: the stream it came as, or ``None``)."""
        cache, lookup = self.engine.cache, self.lookup
        if cache is None or lookup is None or not self.request.cache.store:
            return
        if completion.finish_reason not in ("stop", "length", "tool_calls"):
            return
        reply = CachedReply.from_completion(
            completion,
            assembler.parts if assembler is not None else None,
            assembler.tool_deltas if assembler is not None else None,
            created_at=time.time(),
        )
        # stored under the spec's resolution, where the next lookup of this request looks
        await cache.store(self.request, lookup.provider, lookup.model, reply, key=lookup.key)

    # -- fitting the prompt ---------------------------------------------------------------
    def _check_fits(self, spec: str) -> None:
        """Refuse a prompt that cannot fit ``spec``'s context window (when the catalogue
        knows it): estimated prompt tokens plus the requested output allowance."""
        engine = self.engine
        provider, _, model = spec.partition(":")
        limit = _context_window(engine, provider, model)
        if limit is None:
            return
        prompt = prompt_tokens(self.request)
        allowance = self.request.params.max_tokens or 0
        if prompt + allowance <= limit:
            return
        size = sum(len(m.content) for m in self.request.messages) + len(self.request.system or "")
        asked = f" plus the {allowance:,} output tokens asked for" if allowance else ""
        raise PromptTooLong(
            f"the prompt is about {prompt:,} tokens ({size:,} characters){asked}, more than "
            f"{spec}'s context window of {limit:,} tokens: shorten it or choose a model with "
            "a larger context",
            model=spec,
            tokens=prompt + allowance,
            context_window=limit,
        )

    # -- budget ---------------------------------------------------------------------------
    async def _admit(self, route: Route) -> tuple[Route, Reservation | None]:
        """Ask the governor for the route's first model: go ahead, go cheaper (the router
        gives the cheaper route), wait, or refuse (``BudgetExceeded``).

        A deferred call waits in its own coroutine, so other calls carry on meanwhile.
        """
        governor = self.engine.governor
        if governor is None:
            return route, None
        context = self.request.context
        for _ in range(_MAX_ADMISSION_ROUNDS):
            provider, _, model = route.model.partition(":")
            reservation = await governor.reserve(
                self.request, provider, model, priority=context.priority
            )
            if reservation.decision == "allow":
                if route.budget == NO_BUDGET:
                    route = route.with_budget("within budget")
                return route, reservation
            if reservation.decision == "defer":
                await asyncio.sleep(reservation.eta_s or 0.0)
            elif reservation.suggested_tier in self.engine.router.tiers:
                why = f"{reservation.account}/{reservation.window} has no room"
                route = self.engine.router.downgrade(
                    route, reservation.suggested_tier, why, tools=uses_tools(self.request)
                )
            else:
                break
        raise BudgetExceeded(
            f"no budget for {route.model} after {_MAX_ADMISSION_ROUNDS} tries",
            account="-",
            window="-",
            resets_at=None,
        )

    # -- providers ------------------------------------------------------------------------
    async def _ready(self, route: Route) -> tuple[Provider, Request]:
        """What to call, and with what, before the clock starts: the route's providers built
        (off the event loop) and the first one warmed. A single model gets its L1 breakpoints
        now; a chain places each model's as it reaches it. A fallback that cannot be built is
        left out and recorded; the first model's failure to build is the call's error."""
        started = time.perf_counter()
        registry = self.engine.registry
        providers = [await registry.aresolve(route.chain[0].spec)]
        hops = {providers[0].spec: route.chain[0]}
        for hop in route.fallbacks:
            try:
                self._check_fits(hop.spec)
                provider = await registry.aresolve(hop.spec)
            except PromptTooLong as exc:
                self.unavailable.append((hop, f"too small a context: {exc.context_window:,}"))
                continue
            except ConfigError as exc:  # e.g. a missing optional SDK: not this call's fault
                self.unavailable.append((hop, str(exc)))
                continue
            providers.append(provider)
            hops[provider.spec] = hop
        await providers[0].warm()
        self.resolve_s = time.perf_counter() - started
        if len(providers) == 1:
            return providers[0], await self._prepare(providers[0], self.request)

        def on_fallback(failed: Provider, error: ProviderError, following: Provider) -> None:
            reason = fallback_reason(failed.spec, error)
            self.fallbacks.append(Fallback(hops[failed.spec], reason, hops[following.spec]))

        chain = FallbackProvider(providers, on_fallback=on_fallback, prepare=self._prepare)
        return chain, self.request

    async def _prepare(self, provider: Provider, request: Request) -> Request:
        """L1 for the model about to be called: its breakpoints (or key) in the request."""
        cache = self.engine.cache
        if cache is None or cache.planner is None:
            return request
        planned = await cache.plan_call(request, provider.name, provider.model)
        self.plans[provider.spec] = planned
        return planned.request_for(request)

    def _restarted(self, marker: Chunk, assembler: StreamAssembler) -> None:
        """Record a failed attempt; fail the call if its caller cannot take back what it
        was shown."""
        spec = f"{marker.provider}:{marker.model}" if marker.provider else assembler.model
        reason = marker.restart or "the stream broke"
        self.retries.append(Retry(spec, reason))
        if self.restartable or not (assembler.parts or assembler.tool_deltas):
            return
        raise ProviderUnavailable(
            f"stream interrupted after {len(assembler.text)} characters, which were already "
            f"passed on ({failure_of(reason)})",
            partial_text=assembler.text,
            provider=marker.provider or assembler.provider,
            model=marker.model or assembler.model,
        )

    async def _answered(
        self,
        assembler: StreamAssembler,
        called: float,
        ttft_s: float | None,
        reservation: Reservation | None,
    ) -> None:
        """Price what answered, report L1's savings, commit its usage, store the reply."""
        duration_s = time.perf_counter() - called
        completion = self._priced(
            assembler.completion(streamed=self.streaming),
            ttft_s=duration_s if ttft_s is None else ttft_s,
            duration_s=duration_s,
        )
        if self.retries:
            completion = completion.model_copy(
                update={"retries": tuple(f"{r.spec}: {r.reason}" for r in self.retries)}
            )
        self.answered = (completion.provider, completion.model)
        completion = await self._after_call(completion)
        if reservation is not None and self.engine.governor is not None:
            await self.engine.governor.commit(
                reservation, completion.usage, provider=completion.provider, model=completion.model
            )
        await self._store(completion, assembler if self.streaming else None)
        self.completion = completion

    def _priced(self, reply: Completion, *, ttft_s: float, duration_s: float) -> Completion:
        entry = self.engine.catalog.lookup(reply.provider, reply.model)
        return reply.model_copy(
            update={
                "ttft_s": ttft_s,
                "duration_s": duration_s,
                "cost_usd": entry.cost(reply.usage) if entry is not None else None,
            }
        )

    async def _after_call(self, completion: Completion) -> Completion:
        """Mark a prefix the provider cached as warm; report what its cache saved."""
        cache = self.engine.cache
        if cache is None:
            return completion
        planned = self.plans.get(f"{completion.provider}:{completion.model}")
        saved = await cache.record_call(planned.planned if planned else None, completion)
        if saved is None:
            return completion
        return completion.model_copy(update={"saved_usd": saved.net_usd})

    # -- the record -----------------------------------------------------------------------
    def _record(self, started: float, error: BaseException | None) -> None:
        if not self.engine.observers:
            return
        provider, model = self.answered
        if not provider and self.route is not None:  # failed: name the model called last
            last = self.fallbacks[-1].next if self.fallbacks else self.route.chain[0]
            provider, _, model = last.spec.partition(":")
        self.engine.notify(
            CallRecord(
                request=self.request,
                provider=provider,
                model=model,
                completion=self.completion if error is None else None,
                error=error,
                engine_s=time.perf_counter() - started,
                lookup=self.lookup,
                route=self.route,
                fallbacks=tuple(self.fallbacks),
                unavailable=tuple(self.unavailable),
                resolve_s=self.resolve_s,
                retries=tuple(self.retries),
            )
        )


def _context_window(engine: Engine, provider: str, model: str) -> int | None:
    """The model's context window, when the catalogue knows it. ``None`` for a local
    llama.cpp model: its adapter counts the prompt with the model's own tokenizer before
    generating (exact, and free: nothing is billed), where an estimate could refuse a prompt
    that fits."""
    if engine.registry.kind_of(provider) == "llamacpp":
        return None
    entry = engine.catalog.lookup(provider, model)
    return entry.context_window if entry is not None else None


def _whole(reply: Completion | CachedReply) -> tuple[Chunk, ...]:
    """A reply as the two chunks a one-piece stream would have: its text and tool calls,
    then its end."""
    completion = reply.to_completion() if isinstance(reply, CachedReply) else reply
    calls = tuple(
        ToolCallDelta(index=index, id=call.id, name=call.name, arguments=call.arguments)
        for index, call in enumerate(completion.tool_calls)
    )
    return (
        Chunk(text=completion.text, tool_calls=calls),
        Chunk(
            usage=completion.usage,
            finish_reason=completion.finish_reason,
            provider=completion.provider,
            model=completion.model,
        ),
    )
