"""The engine: the one place that composes the parts of a model call.

Today one call is request -> provider -> completion, timed around the provider (TTFT and
duration) and priced from the catalogue. Each step is its own method so the cache (lookup
before the provider, store after), the router (inside ``_provider_for``), the governor
(around the provider call) and the ledger (an observer) slot in without reshaping the call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from helios.catalog import Catalog
from helios.messages import Chunk, Completion, Request
from helios.providers.base import Provider, StreamAssembler
from helios.providers.registry import ProviderRegistry
from helios.settings import Settings


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What an observer learns about one finished (or failed) call."""

    request: Request
    provider: str
    model: str
    completion: Completion | None
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
        observers: Sequence[CallObserver] = (),
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.observers = list(observers)

    @classmethod
    def from_settings(cls, settings: Settings, *, observers: Sequence[CallObserver] = ()) -> Engine:
        catalog = Catalog.load(settings.catalog_files)
        return cls(ProviderRegistry(settings, catalog), catalog, observers=observers)

    async def complete(self, request: Request) -> Completion:
        """The whole reply in one piece (the provider's non-streaming call)."""
        started = time.perf_counter()
        provider = self._provider_for(request)
        try:
            reply = await provider.complete(request)
        except BaseException as exc:
            self._notify(request, provider, None, exc, started)
            raise
        elapsed = time.perf_counter() - started
        completion = self._finish(reply, ttft_s=elapsed, duration_s=elapsed, streamed=False)
        self._notify(request, provider, completion, None, started)
        return completion

    def stream(self, request: Request) -> CompletionStream:
        """The reply as it is generated; ``.completion`` is set once the stream is consumed."""
        return CompletionStream(self, request)

    async def aclose(self) -> None:
        await self.registry.aclose()

    # -- the steps of one call ----------------------------------------------------------
    def _provider_for(self, request: Request) -> Provider:
        return self.registry.resolve(request.model)

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
        provider: Provider,
        completion: Completion | None,
        error: BaseException | None,
        started: float,
    ) -> None:
        if not self.observers:
            return
        record = CallRecord(
            request=request,
            provider=provider.name,
            model=provider.model,
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
        provider = engine._provider_for(self.request)
        assembler = StreamAssembler(provider.name, provider.model)
        ttft_s: float | None = None
        try:
            async for chunk in provider.stream(self.request):
                if ttft_s is None and chunk.text:
                    ttft_s = time.perf_counter() - started
                assembler.add(chunk)
                yield chunk
        except BaseException as exc:
            engine._notify(self.request, provider, None, exc, started)
            raise
        duration_s = time.perf_counter() - started
        self.completion = engine._finish(
            assembler.completion(),
            ttft_s=duration_s if ttft_s is None else ttft_s,
            duration_s=duration_s,
            streamed=True,
        )
        engine._notify(self.request, provider, self.completion, None, started)
