"""The runtime: the one place that assembles Helios from its settings, and closes it.

::

    async with Runtime.open(settings) as runtime:
        reply = await runtime.engine.complete(Request.of("Hi", model="auto"))

Opening reads what must be read once per process: with the ledger enabled, the store (its
runtime flag overrides applied to the settings) and the models' health over the last hour
(for the router). Every other part is built on first use, so a command that only reads the
ledger never builds a cache or a router: the catalogue, the provider registry, the router,
the governor, the cache manager, the engine (whose every call the ledger records) and the
health monitor, and the API key store. Closing closes what was built, makes the recorded
events durable (a ledger that cannot be reached costs the record, not the answer: a
warning) and closes the store.

A process that takes calls made with API keys (``helios serve``) opens its runtime with
``api_keys=True``: the engine then holds every call that carries a ``key_id`` to that key's
budget and rate limit (see :mod:`helios.keys.budgets`), whether or not the settings
configure budgets of their own.

CLI commands, ``helios serve``, the pipelines, DAG runs and the benches all build their
parts here; nothing else constructs them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import cached_property

from helios.cache.factory import cache_manager
from helios.cache.manager import CacheManager
from helios.call_events import LedgerRecorder
from helios.catalog import Catalog
from helios.config.settings import Settings, load_settings
from helios.embeddings.base import Embedder
from helios.engine import CallObserver, Engine
from helios.errors import HeliosError, LedgerError
from helios.governance.governor import Governor
from helios.governance.router import EconomicRouter, ModelObservations
from helios.keys.budgets import KeyBudgets
from helios.keys.directory import KeyDirectory
from helios.keys.factory import open_key_store
from helios.keys.store import KeyStore
from helios.ledger.factory import open_store
from helios.ledger.sink import EventSink, FanOut
from helios.ledger.store import EventQuery, LedgerStore
from helios.ledger.validation import screen
from helios.ledger.writer import LedgerWriter
from helios.ops.alerts import Alerter
from helios.ops.flags import FlagRegistry
from helios.ops.monitor import HealthMonitor
from helios.providers.base import Provider
from helios.providers.registry import ProviderRegistry

logger = logging.getLogger(__name__)
HEALTH_WINDOW_S = 3600.0  # how far back the router looks at each model's errors
LEDGER_WAIT_S = 2.0
"""How long a flush (the end of ``helios run``, closing) waits for a ledger store that
neither answers nor fails (a PostgreSQL that hangs would otherwise hold the command for
as long as it hangs); healthy, a batch commits in milliseconds."""

Closer = Callable[[], Awaitable[None]]


class Runtime:
    """Helios's parts for one process (or one command), built from one ``Settings``.

    Use :meth:`open`. ``sink`` also receives every event (the CLI's ``--json`` reads it);
    ``providers`` are served as they are (doubles in tests and benches); ``observers`` are
    told about every engine call besides the ledger; a ``store`` or ``cache`` given is used
    and left open; ``api_keys``: calls carry API keys, held to their keys' budgets.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sink: EventSink | None = None,
        providers: Sequence[Provider] = (),
        observers: Sequence[CallObserver] = (),
        store: LedgerStore | None = None,
        cache: CacheManager | None = None,
        api_keys: bool = False,
    ) -> None:
        self.settings = settings
        """The settings in force: the runtime flag overrides applied at open."""
        self._extra_sink = sink
        self._providers = list(providers)
        self._observers = list(observers)
        self._given_store = store
        self._given_cache = cache
        self._api_keys = api_keys
        self.store: LedgerStore | None = None
        """The ledger's event store (``None`` when ``ledger.enabled`` is false)."""
        self.writer: LedgerWriter | None = None
        self.flags: FlagRegistry | None = None
        """The runtime flag overrides (``None`` without a ledger)."""
        self.observations: ModelObservations | None = None
        self.sink: EventSink = FanOut([sink] if sink is not None else [])
        self._closers: list[Closer] = []
        self._embedders: dict[tuple[str, str, int], Embedder] = {}

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        sink: EventSink | None = None,
        providers: Sequence[Provider] = (),
        observers: Sequence[CallObserver] = (),
        store: LedgerStore | None = None,
        cache: CacheManager | None = None,
        api_keys: bool = False,
    ) -> AsyncIterator[Runtime]:
        runtime = cls(
            settings if settings is not None else load_settings(),
            sink=sink,
            providers=providers,
            observers=observers,
            store=store,
            cache=cache,
            api_keys=api_keys,
        )
        try:
            await runtime._start()
            yield runtime
        finally:
            await runtime.aclose()

    async def _start(self) -> None:
        if not self.settings.ledger.enabled:
            return
        if self._given_store is not None:
            self.store = self._given_store
        else:
            self.store = open_store(self.settings.ledger)
            self._closers.append(self.store.aclose)
        ledger = self.settings.ledger
        self.writer = LedgerWriter(
            self.store, batch_size=ledger.batch_size, flush_interval_s=ledger.flush_interval_s
        )
        self._closers.append(self._close_writer)
        sinks: list[EventSink] = [self.writer]
        if self._extra_sink is not None:
            sinks.append(self._extra_sink)
        self.sink = FanOut(sinks)
        self.flags = FlagRegistry(
            self.store, self.settings, poll_interval_s=self.settings.flags.poll_interval_s
        )
        self.settings = await self.flags.current()
        self.observations = await _recent_health(self.store)

    # -- the parts, each built on first use -----------------------------------------------
    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.load(self.settings.catalog_files)

    @cached_property
    def registry(self) -> ProviderRegistry:
        registry = ProviderRegistry(self.settings, self.catalog)
        for provider in self._providers:
            registry.add(provider)
        self._closers.append(registry.aclose)
        return registry

    @cached_property
    def router(self) -> EconomicRouter:
        return EconomicRouter(
            self.registry,
            self.catalog,
            self.settings.tiers,
            self.settings.router,
            observations=self.observations,
        )

    @cached_property
    def governor(self) -> Governor | None:
        """The budgets' state (``None`` without budgets). Calls are held to the configured
        budgets only while ``governor.enabled`` (``helios budget`` reads them either way),
        and, with ``api_keys``, always to their API key's budget and rate limit."""
        config = self.settings.governor
        if not config.budgets and not self._api_keys:
            return None
        governor = Governor.from_settings(
            config,
            self.catalog,
            sink=self.sink,
            hold_budgets=config.enabled,
            budget_source=KeyBudgets(self.key_directory) if self._api_keys else None,
        )
        self._closers.append(governor.close)
        return governor

    @cached_property
    def keys(self) -> KeyStore:
        """The API key store (``keys.backend``); it connects on first use."""
        store = open_key_store(self.settings.keys)
        self._closers.append(store.aclose)
        return store

    @cached_property
    def key_directory(self) -> KeyDirectory:
        """The keys as this process sees them, each row trusted for ``keys.cache_s``."""
        return KeyDirectory(self.keys, ttl_s=self.settings.keys.cache_s)

    @cached_property
    def cache(self) -> CacheManager | None:
        """The response cache (``None`` when ``cache.enabled`` is false)."""
        if self._given_cache is not None:
            return self._given_cache
        manager = cache_manager(self.settings, self.catalog, kind_of=self.registry.kind_of)
        if manager is not None:
            self._closers.append(manager.aclose)
        return manager

    @cached_property
    def engine(self) -> Engine:
        """The engine every call goes through; the ledger records each call it makes."""
        recording = self.writer is not None or self._extra_sink is not None
        observers = [LedgerRecorder(self.sink)] if recording else []  # no sink, no events
        return Engine(
            self.registry,
            self.catalog,
            router=self.router,
            cache=self.cache,
            governor=self.governor if self.settings.governor.enabled or self._api_keys else None,
            tiers=self.settings.tiers,
            observers=[*observers, *self._observers],
        )

    @cached_property
    def monitor(self) -> HealthMonitor | None:
        """The health monitor over this ledger (``None`` without one); it runs where the
        caller schedules it (``helios serve``, ``helios monitor``)."""
        if self.store is None:
            return None
        config = self.settings.monitor
        alerter = Alerter(config.webhook_url if config.alert else None)
        self._closers.append(alerter.aclose)
        return HealthMonitor(
            self.store,
            config,
            alerter=alerter,
            abandoned_after_s=self.settings.ledger.abandoned_after_s,
        )

    def local_embedder(self) -> Embedder:
        """The local MiniLM embedder (evidence retrieval); its model loads on first use and
        once per process, however many are made."""
        from helios.embeddings.onnx import OnnxMiniLM  # numpy and onnxruntime on first use

        return OnnxMiniLM.from_settings(self.settings.embeddings)

    def openai_embedder(self, model: str, dimensions: int, provider: str = "openai") -> Embedder:
        """OpenAI embeddings (``providers.<provider>``'s key and URL), one client per model,
        dimensions and provider for the runtime's life."""
        key = (provider, model, dimensions)
        embedder = self._embedders.get(key)
        if embedder is None:
            from helios.embeddings.openai import OpenAIEmbedder  # the openai SDK on first use
            from helios.providers.openai_client import async_client

            client = async_client(provider, model, self.settings)
            embedder = OpenAIEmbedder(client, model, dimensions, provider_name=provider)
            self._embedders[key] = embedder
            self._closers.append(embedder.aclose)
        return embedder

    # -- long-running processes -----------------------------------------------------------
    async def warm(self) -> list[str]:
        """Build and warm the providers of the default model and of every tier that can
        run here, and the semantic cache's embedder, so that no caller's first call pays
        for an SDK import or a model load. Returns what was warmed; a part that fails to
        warm is logged and skipped (the first call will try again)."""
        warmed = await self._warm_providers()
        semantic = self.cache.semantic if self.cache is not None else None
        if semantic is not None:
            try:
                await semantic.embedder.embed(["warm-up"])
            except HeliosError as exc:
                logger.warning("could not warm the semantic cache's embedder: %s", exc)
            else:
                warmed.append(f"embedder {semantic.embedder.name}")
        return warmed

    async def _warm_providers(self) -> list[str]:
        registry = self.registry
        specs = dict.fromkeys([self.settings.default_model, *self.settings.tiers.values()])
        warmed: list[str] = []
        for spec in specs:
            if registry.is_auto(spec) or registry.unready(spec) is not None:
                continue
            try:
                provider = await registry.aresolve(spec)
                await provider.warm()
            except HeliosError as exc:
                logger.warning("could not warm %s: %s", spec, exc)
                continue
            warmed.append(provider.spec)
        return warmed

    async def flush(self) -> None:
        """Make the events recorded so far durable (a ledger outage is a warning)."""
        if self.writer is not None:
            await _flush(self.writer)

    async def commit_before_answer(self) -> None:
        """Wait until the events recorded so far are committed, for a result about to leave
        the process: the server answers only then, so one killed after answering has lost
        none of its answers' events. Concurrent callers share one commit.

        Bounded by ``ledger.commit_before_answer_s``, and skipped while the store fails or
        falls behind (its oldest queued event older than that bound): an outage must not be
        added to every answer. The writer keeps those events and retries on its own."""
        writer, wait_s = self.writer, self.settings.ledger.commit_before_answer_s
        if writer is None or wait_s <= 0 or writer.last_error is not None:
            return
        if writer.lag_s <= wait_s:
            await _flush(writer, wait_s)

    async def aclose(self) -> None:
        """Close what was built, newest first; the store last, after the events are durable."""
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            await close()

    async def _close_writer(self) -> None:
        assert self.writer is not None
        if not await _flush(self.writer):
            return  # the store hangs: closing would wait on it too; its events are lost
        closing = asyncio.ensure_future(self.writer.aclose())
        done, _ = await asyncio.wait((closing,), timeout=LEDGER_WAIT_S)
        if not done:
            logger.warning(
                "ledger did not answer in %g s on close: %d events not recorded",
                LEDGER_WAIT_S,
                self.writer.pending,
            )
        elif (error := closing.exception()) is not None:
            logger.warning("ledger unavailable on close: %s", error)


async def _recent_health(store: LedgerStore) -> ModelObservations | None:
    """What the ledger saw of each model in the last hour, for the router; a ledger that
    cannot be read leaves the router without it rather than failing the run."""
    kinds = ["persona_llm_run", "error", "route_decision"]
    try:
        events = await store.query(EventQuery(since=time.time() - HEALTH_WINDOW_S, types=kinds))
    except LedgerError as exc:
        logger.warning("ledger unavailable, routing without model health: %s", exc)
        return None
    screened = screen(events)
    if screened.skipped:
        logger.warning("model health: %s", screened.warning())
    return ModelObservations.from_events(screened.events)


async def _flush(writer: LedgerWriter, wait_s: float = LEDGER_WAIT_S) -> bool:
    """An unreachable ledger costs the record, not the answer: Helios warns and goes on, as
    it does when a cache store fails. A store that hangs (no error, no answer) is waited on
    for ``wait_s`` at most; ``False`` then (the events stay queued in the writer)."""
    try:
        await asyncio.wait_for(writer.flush(), wait_s)
    except TimeoutError:
        logger.warning(
            "ledger did not answer in %g s: %d events not recorded yet",
            wait_s,
            writer.pending,
        )
        return False
    except LedgerError as exc:
        logger.warning("ledger unavailable, this task's events were not recorded: %s", exc)
    return True
