"""Evidence for the dialectic pipeline: the passages of ``--docs`` that bear on the goal.

::

    paths → load_documents → Document → chunk_document → Chunk
          → EvidenceGatherer.gather(goal) → Evidence(passages E1…En, ranked by cosine)

Two cache levels share one :class:`~helios.cache.backends.base.CacheBackend`:

- ``evidence:<hash>``: the whole result for (documents, goal, settings, embedder). A hit
  returns without creating the embedder, so a repeated run never loads onnxruntime.
- ``embeddings:<embedder>:<chunk_words>:<document sha256>``: one document's chunk vectors.
  A new goal or one edited document embeds only the documents not seen before.

The cache fails open: a backend error or an unreadable value is a miss, counted in
:attr:`EvidenceGatherer.errors`. numpy is imported where vectors are handled, so a
pipeline without documents does not need the embeddings extra.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from helios.cache.backends.base import CacheBackend
from helios.embeddings.base import LOCAL_MINILM_INT8, Embedder
from helios.errors import ConfigError, InputError
from helios.pipeline.documents import (
    Chunk,
    Document,
    chunk_document,
)

if TYPE_CHECKING:
    import numpy
    from numpy.typing import NDArray

    Vectors = NDArray[numpy.float32]

logger = logging.getLogger(__name__)

_FORMAT = 1  # bump when chunking or the cached layout changes: old entries then miss


# -- results ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Passage:
    id: str
    """``E1``, ``E2``, … in rank order: what answers cite."""
    source: str
    start_line: int
    end_line: int
    text: str
    score: float
    """Cosine similarity to the goal."""

    @property
    def citation(self) -> str:
        """``docs/arch.md:12-18`` (or ``docs/arch.md:12`` for one line)."""
        lines = f"{self.start_line}-{self.end_line}"
        return f"{self.source}:{self.start_line if self.start_line == self.end_line else lines}"


@dataclass(frozen=True, slots=True)
class Evidence:
    passages: tuple[Passage, ...]
    documents: int
    chunks: int
    from_cache: bool
    embedded_chunks: int
    """Chunks embedded by this call; 0 when every vector (or the result) came from cache."""
    duration_s: float

    @property
    def absent(self) -> bool:
        return not self.passages

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(passage.id for passage in self.passages)

    def as_prompt_block(self) -> str:
        """Each passage as ``[E1] (source:lines)`` and its text, for persona prompts."""
        return "\n\n".join(f"[{p.id}] ({p.citation})\n{p.text}" for p in self.passages)


# -- gathering ----------------------------------------------------------------------------
class EvidenceGatherer:
    """Ranks the chunks of the documents by cosine similarity to the goal; keeps top_k.

    ``embedder_name`` keys both caches, so it must be known before the embedder exists:
    it defaults to the factory's ``name`` when the factory is an Embedder class, else to
    the local MiniLM's name. An embedder that turns out to be named otherwise is an error.
    """

    def __init__(
        self,
        embedder_factory: Callable[[], Embedder],
        backend: CacheBackend | None,
        *,
        top_k: int = 6,
        chunk_words: int = 120,
        ttl_s: float = 1800.0,
        min_score: float = 0.0,
        embedder_name: str | None = None,
        embeddings_ttl_s: float | None = 7 * 24 * 3600.0,
    ) -> None:
        if top_k < 1 or chunk_words < 1 or ttl_s <= 0:
            raise ConfigError("evidence: top_k and chunk_words must be >= 1 and ttl_s > 0")
        self.embedder_factory = embedder_factory
        self.backend = backend
        self.top_k = top_k
        self.chunk_words = chunk_words
        self.ttl_s = ttl_s
        self.min_score = min_score
        factory_name = getattr(embedder_factory, "name", None)
        self.embedder_name = embedder_name or (
            factory_name if isinstance(factory_name, str) else LOCAL_MINILM_INT8
        )
        # Vectors depend only on a document's bytes, never go stale, and cost the most to
        # rebuild; they may outlive the results, which depend on the goal.
        self.embeddings_ttl_s = embeddings_ttl_s
        self.errors = 0
        """Cache reads and writes that failed or returned unreadable values (all misses)."""
        self._embedder: Embedder | None = None

    async def gather(self, goal: str, documents: Sequence[Document]) -> Evidence:
        started = time.perf_counter()
        if not goal.strip():
            raise InputError("the goal is empty")
        # Sorted, so that the order of --docs changes neither the key nor the ranking.
        ordered = sorted(documents, key=lambda document: (document.source, document.sha256))
        key = self._evidence_key(goal, ordered)
        if ordered and (found := _decode_evidence(await self._get(key), self)) is not None:
            passages, chunk_count = found
            return Evidence(passages, len(ordered), chunk_count, True, 0, _since(started))
        chunked = await asyncio.to_thread(
            lambda: [chunk_document(doc, chunk_words=self.chunk_words) for doc in ordered]
        )
        chunks = [chunk for document_chunks in chunked for chunk in document_chunks]
        if not chunks:  # no documents, or only empty ones: nothing to embed
            return Evidence((), len(ordered), 0, False, 0, _since(started))
        embedder = self._embedder_for_miss()
        vectors, embedded = await self._chunk_vectors(embedder, ordered, chunked)
        goal_vector = (await embedder.embed([goal]))[0]
        top = await asyncio.to_thread(_rank, vectors, goal_vector, self.top_k, self.min_score)
        passages = tuple(_passage(n, chunks[i], score) for n, (i, score) in enumerate(top, 1))
        evidence = Evidence(passages, len(ordered), len(chunks), False, embedded, _since(started))
        await self._set(key, _encode_evidence(evidence), self.ttl_s)
        return evidence

    async def aclose(self) -> None:
        if self._embedder is not None:
            embedder, self._embedder = self._embedder, None
            await embedder.aclose()

    def _embedder_for_miss(self) -> Embedder:
        if self._embedder is None:
            embedder = self.embedder_factory()
            if embedder.name != self.embedder_name:
                raise ConfigError(
                    f"the evidence embedder is named {embedder.name!r}, but its caches are "
                    f"keyed on {self.embedder_name!r}: pass embedder_name={embedder.name!r}"
                )
            self._embedder = embedder
        return self._embedder

    async def _chunk_vectors(
        self, embedder: Embedder, documents: list[Document], chunked: list[list[Chunk]]
    ) -> tuple[list[Vectors], int]:
        """Every document's chunk vectors, embedding only documents missing from the cache."""
        # By content: identical files are looked up and embedded once.
        unique = {d.sha256: chunks for d, chunks in zip(documents, chunked, strict=True) if chunks}
        raws = await asyncio.gather(*(self._get(self._vectors_key(sha)) for sha in unique))
        found: dict[str, Vectors] = {}
        for (sha256, chunks), raw in zip(unique.items(), raws, strict=True):
            if (cached := _decode_vectors(raw, chunks, embedder.dim, self)) is not None:
                found[sha256] = cached
        missing = {sha256: chunks for sha256, chunks in unique.items() if sha256 not in found}
        texts = [chunk.text for chunks in missing.values() for chunk in chunks]
        if texts:
            fresh = await embedder.embed(texts)
            offset = 0
            for sha256, chunks in missing.items():
                found[sha256] = fresh[offset : offset + len(chunks)]
                offset += len(chunks)
            ttl_s = self.embeddings_ttl_s
            writes = [
                self._set(self._vectors_key(sha256), _encode_vectors(found[sha256], chunks), ttl_s)
                for sha256, chunks in missing.items()
            ]
            await asyncio.gather(*writes)
        vectors = [found[d.sha256] for d, chunks in zip(documents, chunked, strict=True) if chunks]
        return vectors, len(texts)

    def _evidence_key(self, goal: str, documents: list[Document]) -> str:
        # Sources are part of the key: the passages cite them, so a moved file must miss.
        sources = [[document.source, document.sha256] for document in documents]
        settings = [self.top_k, self.chunk_words, self.min_score, self.embedder_name]
        identity = json.dumps([_FORMAT, sources, goal, settings])
        return f"evidence:{hashlib.sha256(identity.encode()).hexdigest()}"

    def _vectors_key(self, sha256: str) -> str:
        return f"embeddings:{self.embedder_name}:{self.chunk_words}:{sha256}"

    async def _get(self, key: str) -> bytes | None:
        if self.backend is None:
            return None
        try:
            return await self.backend.get(key)
        except Exception as exc:  # fail open: a cache outage must not fail the run
            self.cache_failed(f"read of {key}", exc)
            return None

    async def _set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        if self.backend is None:
            return
        try:
            await self.backend.set(key, value, ttl_s=ttl_s)
        except Exception as exc:  # fail open, as in _get: the result is still good
            self.cache_failed(f"write of {key}", exc)

    def cache_failed(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        logger.warning("evidence cache: %s failed: %s", what, exc)


def _passage(rank: int, chunk: Chunk, score: float) -> Passage:
    return Passage(f"E{rank}", chunk.source, chunk.start_line, chunk.end_line, chunk.text, score)


def _since(started: float) -> float:
    return time.perf_counter() - started


def _rank(
    vectors: list[Vectors], goal: Vectors, top_k: int, min_score: float
) -> list[tuple[int, float]]:
    import numpy as np

    scores = np.concatenate(vectors) @ goal  # rows are unit vectors: dot product = cosine
    # A stable sort of the negated scores: equal scores keep document and line order, so the
    # same inputs always give the same E-numbers (argpartition would not promise that), and
    # sorting thousands of chunks costs well under a millisecond.
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [(int(i), float(scores[i])) for i in order if scores[i] >= min_score]


def _encode_vectors(vectors: Vectors, chunks: list[Chunk]) -> bytes:
    import numpy as np

    header = json.dumps({"v": _FORMAT, "spans": [[c.start_line, c.end_line] for c in chunks]})
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    return header.encode() + b"\n" + buffer.getvalue()


def _decode_vectors(
    raw: bytes | None, chunks: list[Chunk], dim: int, gatherer: EvidenceGatherer
) -> Vectors | None:
    if raw is None:
        return None
    import numpy as np

    try:
        header, _, body = raw.partition(b"\n")
        meta = json.loads(header)
        spans = [[c.start_line, c.end_line] for c in chunks]
        if meta.get("v") != _FORMAT or meta.get("spans") != spans:
            return None  # written by another chunker version: embed again
        vectors = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, TypeError, AttributeError, EOFError, OSError) as exc:
        gatherer.cache_failed("decoding cached vectors", exc)
        return None
    if vectors.shape != (len(chunks), dim) or vectors.dtype != np.float32:
        return None
    result: Vectors = vectors
    return result


def _encode_evidence(evidence: Evidence) -> bytes:
    passages = [
        [p.id, p.source, p.start_line, p.end_line, p.text, p.score] for p in evidence.passages
    ]
    return json.dumps({"v": _FORMAT, "passages": passages, "chunks": evidence.chunks}).encode()


def _decode_evidence(
    raw: bytes | None, gatherer: EvidenceGatherer
) -> tuple[tuple[Passage, ...], int] | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        if data.get("v") != _FORMAT:
            return None
        passages = tuple(
            Passage(str(id_), str(source), int(start), int(end), str(text), float(score))
            for id_, source, start, end, text, score in data["passages"]
        )
        return passages, int(data["chunks"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        gatherer.cache_failed("decoding a cached result", exc)
        return None
