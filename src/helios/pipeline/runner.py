"""Building and running the dialectic pipeline from settings: the Python API's front door.

``await run_dialectic(goal, docs=[...])`` loads the documents, opens the ledger (events,
flag overrides), builds the engine (with its response cache) and the evidence gatherer
(sharing the cache's store, so evidence survives between runs too), runs the pipeline,
makes its events durable and closes what it opened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from helios.cache.backends.base import CacheBackend
from helios.cache.backends.memory import MemoryBackend
from helios.config.settings import Settings, load_settings
from helios.embeddings.base import Embedder, embedder_name_for
from helios.engine import Engine
from helios.errors import LedgerError
from helios.governance.router import ModelObservations
from helios.ledger.factory import open_store
from helios.ledger.sink import EventSink, FanOut
from helios.ledger.store import EventQuery, LedgerStore
from helios.ledger.writer import LedgerWriter
from helios.ops.flags import FlagRegistry
from helios.pipeline.dialectic import DialecticPipeline
from helios.pipeline.documents import Document, load_documents
from helios.pipeline.evidence import EvidenceGatherer
from helios.pipeline.results import DialecticResult, PipelineObserver

logger = logging.getLogger(__name__)
HEALTH_WINDOW_S = 3600.0  # how far back the router looks at each model's errors


def local_embedder_factory(settings: Settings) -> Embedder:
    """The local MiniLM embedder; imported on first use so cache hits never load it."""
    from helios.embeddings.onnx import OnnxMiniLM

    config = settings.embeddings
    return OnnxMiniLM(
        model_path=config.model_path, tokenizer_path=config.tokenizer_path, threads=config.threads
    )


def build_gatherer(settings: Settings, engine: Engine) -> EvidenceGatherer:
    evidence = settings.orchestration.evidence
    # One store for everything cached: the response cache's backend when there is one.
    shared = engine.cache.backend if engine.cache is not None else None
    backend: CacheBackend = shared if shared is not None else MemoryBackend(max_entries=256)
    return EvidenceGatherer(
        lambda: local_embedder_factory(settings),
        backend,
        top_k=evidence.top_k,
        chunk_words=evidence.chunk_words,
        ttl_s=evidence.cache_ttl_s,
        # cache keys name the embedder before it exists, so that hits never create it
        embedder_name=embedder_name_for(settings.embeddings.model_path),
    )


async def load_docs(paths: Sequence[str | Path], settings: Settings) -> list[Document]:
    if not paths:
        return []
    limit = settings.orchestration.evidence.max_document_bytes
    return await load_documents([Path(p) for p in paths], max_document_bytes=limit)


async def run_dialectic(
    goal: str,
    *,
    docs: Sequence[str | Path] = (),
    settings: Settings | None = None,
    engine: Engine | None = None,
    sink: EventSink | None = None,
    observer: PipelineObserver | None = None,
    model: str | None = None,
) -> DialecticResult:
    """Run thesis -> antithesis -> synthesis -> gate for ``goal`` over ``docs``.

    With the ledger enabled (the default) the task's events are written to it, and the
    result is returned only once they are durable; runtime flag overrides stored there
    apply to the task. ``model`` sends every persona to one model spec. An ``engine``
    passed in stays open; one built here is closed before returning.
    """
    settings = settings if settings is not None else load_settings()
    documents = await load_docs(docs, settings)
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(ledger_session(settings, sink))
        settings = session.settings
        if engine is None:
            engine = session.engine()
            stack.push_async_callback(engine.aclose)
        gatherer = build_gatherer(settings, engine)
        stack.push_async_callback(gatherer.aclose)
        pipeline = DialecticPipeline(
            engine,
            settings,
            gatherer,
            sink=session.sink,
            observer=observer,
            model_override=model,
            settings_source=session.flags,
        )
        return await pipeline.run(goal, documents)


@dataclass
class LedgerSession:
    """What a run gets from the ledger: settings with flag overrides applied, a sink that
    records (plus the caller's), the flag registry, and the models' recent health."""

    settings: Settings
    sink: EventSink
    flags: FlagRegistry | None
    observations: ModelObservations | None

    def engine(self) -> Engine:
        """An engine whose routing and budget decisions are recorded too."""
        return Engine.from_settings(self.settings, sink=self.sink, observations=self.observations)


@asynccontextmanager
async def ledger_session(
    settings: Settings, sink: EventSink | None = None
) -> AsyncIterator[LedgerSession]:
    """Open the ledger for one run (``helios run``, ``plan``, ``dag run``); on the way out
    its events are made durable, then the writer and store are closed."""
    if not settings.ledger.enabled:
        yield LedgerSession(settings, FanOut([sink] if sink else []), None, None)
        return
    store = open_store(settings.ledger)
    writer = LedgerWriter(
        store,
        batch_size=settings.ledger.batch_size,
        flush_interval_s=settings.ledger.flush_interval_s,
    )
    try:
        flags = FlagRegistry(store, settings, poll_interval_s=settings.flags.poll_interval_s)
        session = LedgerSession(
            await flags.current(),
            FanOut([writer, sink] if sink else [writer]),
            flags,
            await _recent_health(store),
        )
        try:
            yield session
        finally:
            await _flush(writer)
    finally:
        await _close_quietly(writer)
        await store.aclose()


async def _recent_health(store: LedgerStore) -> ModelObservations | None:
    """What the ledger saw of each model in the last hour, for the router; a ledger that
    cannot be read leaves the router without it rather than failing the run."""
    kinds = ["persona_llm_run", "error", "route_decision"]
    try:
        events = await store.query(EventQuery(since=time.time() - HEALTH_WINDOW_S, types=kinds))
    except LedgerError as exc:
        logger.warning("ledger unavailable, routing without model health: %s", exc)
        return None
    return ModelObservations.from_events(events)


async def _flush(writer: LedgerWriter) -> None:
    """Make the task's events durable. An unreachable ledger costs the record, not the
    answer: Helios warns and goes on, as it does when a cache store fails."""
    try:
        await writer.flush()
    except LedgerError as exc:
        logger.warning("ledger unavailable, this task's events were not recorded: %s", exc)


async def _close_quietly(writer: LedgerWriter) -> None:
    try:
        await writer.aclose()
    except LedgerError as exc:
        logger.warning("ledger unavailable on close: %s", exc)
