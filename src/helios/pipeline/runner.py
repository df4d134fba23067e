"""Running the dialectic pipeline from settings: the Python API's front door.

``await run_dialectic(goal, docs=[...])`` loads the documents, opens a
:class:`~helios.runtime.Runtime` (ledger, flag overrides, engine with its response cache),
builds the evidence gatherer (sharing the cache's store, so evidence survives between runs
too), runs the pipeline, makes its events durable and closes what it opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from helios.cache.backends.base import CacheBackend
from helios.cache.backends.memory import MemoryBackend
from helios.config.settings import Settings, load_settings
from helios.embeddings.base import embedder_name_for
from helios.ledger.sink import EventSink
from helios.messages import CallContext
from helios.pipeline.dialectic import DialecticPipeline
from helios.pipeline.documents import Document, load_documents
from helios.pipeline.evidence import EvidenceGatherer
from helios.pipeline.results import DialecticResult, PipelineObserver
from helios.runtime import Runtime


def build_gatherer(runtime: Runtime) -> EvidenceGatherer:
    """Evidence retrieval over the runtime's cache store (one store for everything cached)
    with the local embedder, which is only loaded when something must be embedded."""
    evidence = runtime.settings.orchestration.evidence
    shared = runtime.cache.backend if runtime.cache is not None else None
    backend: CacheBackend = shared if shared is not None else MemoryBackend(max_entries=256)
    return EvidenceGatherer(
        runtime.local_embedder,
        backend,
        top_k=evidence.top_k,
        chunk_words=evidence.chunk_words,
        ttl_s=evidence.cache_ttl_s,
        # cache keys name the embedder before it exists, so that hits never create it
        embedder_name=embedder_name_for(
            runtime.settings.embeddings.model_path, int8=runtime.settings.embeddings.int8
        ),
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
    runtime: Runtime | None = None,
    sink: EventSink | None = None,
    observer: PipelineObserver | None = None,
    model: str | None = None,
    context: CallContext | None = None,
) -> DialecticResult:
    """Run thesis -> antithesis -> synthesis -> gate for ``goal`` over ``docs``.

    With the ledger enabled (the default) the task's events are written to it, and the
    result is returned only once they are durable; runtime flag overrides stored there
    apply to the task. ``model`` sends every persona to one model spec; ``context`` says
    for whom the task runs (tenant, priority, key). A ``runtime`` passed in stays open (its
    sink, not ``sink``, receives the events); one opened here is closed before returning.
    """
    async with AsyncExitStack() as stack:
        if runtime is None:
            base = settings if settings is not None else load_settings()
            runtime = await stack.enter_async_context(Runtime.open(base, sink=sink))
        documents = await load_docs(docs, runtime.settings)
        gatherer = build_gatherer(runtime)
        stack.push_async_callback(gatherer.aclose)
        pipeline = DialecticPipeline(
            runtime.engine,
            runtime.settings,
            gatherer,
            sink=runtime.sink,
            observer=observer,
            model_override=model,
            settings_source=runtime.flags,
        )
        result = await pipeline.run(goal, documents, context=context)
        await runtime.flush()
        return result
