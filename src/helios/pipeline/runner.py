"""Building and running the dialectic pipeline from settings: the Python API's front door.

``await run_dialectic(goal, docs=[...])`` loads the documents, builds the engine (with its
response cache) and the evidence gatherer (sharing the cache's store, so evidence survives
between runs too), runs the pipeline and closes what it opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from helios.cache.backends.base import CacheBackend
from helios.cache.backends.memory import MemoryBackend
from helios.embeddings.base import Embedder, embedder_name_for
from helios.engine import Engine
from helios.ledger.sink import EventSink
from helios.pipeline.dialectic import DialecticPipeline
from helios.pipeline.documents import Document, load_documents
from helios.pipeline.evidence import EvidenceGatherer
from helios.pipeline.results import DialecticResult, PipelineObserver
from helios.settings import Settings, load_settings


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
    backend: CacheBackend = (
        engine.cache.backend if engine.cache is not None else MemoryBackend(max_entries=256)
    )
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

    ``model`` sends every persona to one model spec. An ``engine`` passed in stays open;
    one built here is closed before returning.
    """
    settings = settings if settings is not None else load_settings()
    documents = await load_docs(docs, settings)
    own_engine = engine is None
    engine = engine if engine is not None else Engine.from_settings(settings)
    gatherer = build_gatherer(settings, engine)
    try:
        pipeline = DialecticPipeline(
            engine, settings, gatherer, sink=sink, observer=observer, model_override=model
        )
        return await pipeline.run(goal, documents)
    finally:
        await gatherer.aclose()
        if own_engine:
            await engine.aclose()
