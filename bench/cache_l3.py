"""L3 (semantic) lookup latency at 10k and 100k entries, embedding included, beside GPTCache.

**Filling.** Embedding 100,000 texts with MiniLM takes minutes on 2 cores, so an index of
``size`` entries holds the 300 real stored questions (embedded, stored through
``SemanticCache.store``) plus ``size - 300`` *random unit vectors*, in the same context,
each with the same ~2 KB reply. HNSW search cost depends on the number of vectors and the
graph, not on what the vectors mean, and random 384-dimensional vectors are the harder
case for a graph index (no clusters to exploit); the real questions are what the lookups
find. The first ``ADD_SAMPLE`` random entries go through the public ``add`` one at a time
(timed: what a store costs), the rest are written as rows the way another process sharing
the file would and taken in by the index in one batch; then the index is closed and
opened again (graph saved and loaded), as after a restart. See :func:`fill_helios`.
GPTCache gets exactly the same entries through its bulk ``import_data``.

**Arms**, interleaved, each lookup a different question (every arm gets its own
``SemanticCache``, so its 256-entry vector memo never answers a lookup: 300 questions
cycle through it):

- the embedding alone (``OnnxMiniLM.embed`` of one question) and the index search alone
  (``search(context, vector, k=5)`` with the vector computed beforehand): the split;
- ``SemanticCache.lookup``: embedding + search + verifier + decode;
- ``CacheManager.lookup`` with an empty memory L2: the waterfall, L2 miss then L3, on the
  looked-up questions, and on the unmatched ones keeping only L3 misses (the waterfall
  miss: what every request that goes on to the provider pays);
- GPTCache's ``get`` with the same embedder and the same entries.

For the lookups with an embedding, the time inside the embedder is recorded per call, so
each row also shows "rest" = lookup - embedding over the same calls (paired).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cache_common import (
    MODEL_SPEC,
    PACKAGED_WATERFALL,
    TASK_TYPE,
    THRESHOLD,
    Arm,
    SemanticTexts,
    cached_reply,
    describe,
    measure,
    reply_text,
)
from cache_l2 import request_for
from cache_peers import gptcache_semantic
from helios.cache.backends.memory import MemoryBackend
from helios.cache.backends.vector import SemanticEntry, VectorIndex
from helios.cache.exact import ExactCache
from helios.cache.manager import CacheManager
from helios.cache.prompt import PromptCachePlanner, WarmPrefixes
from helios.cache.semantic import SemanticCache, context_of
from helios.config.cache import SemanticCacheSettings
from helios.config.settings import Settings
from helios.embeddings.base import Embedder
from helios.runtime import Runtime

if TYPE_CHECKING:
    import numpy
    from numpy.typing import NDArray

BULK_SEED = 20261121
ADD_SAMPLE = 2000
"""Bulk entries stored one at a time through ``add`` (timed); the rest go in as rows."""


class TimedEmbedder(Embedder):
    """Delegates to the real embedder and keeps how long the last call took."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.in_process = inner.in_process
        self.last_ns = 0

    async def embed(self, texts: Sequence[str]) -> NDArray[numpy.float32]:
        started = time.perf_counter_ns()
        vectors = await self.inner.embed(texts)
        self.last_ns = time.perf_counter_ns() - started
        return vectors

    def embed_now(self, texts: Sequence[str]) -> NDArray[numpy.float32]:
        # L3 calls this in its worker thread (one hop for embedding and search): the time
        # is then the computation alone, without embed()'s own thread hop
        started = time.perf_counter_ns()
        vectors = self.inner.embed_now(texts)
        self.last_ns = time.perf_counter_ns() - started
        return vectors


def random_units(count: int, dim: int, seed: int) -> NDArray[numpy.float32]:
    import numpy as np

    vectors = np.random.default_rng(seed).standard_normal((count, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def bulk_entries(context: str, count: int, reply: bytes, ttl_s: float) -> list[SemanticEntry]:
    now = time.time()
    return [
        SemanticEntry(
            entry_id=f"bulk-{i}",
            context=context,
            tenant="default",
            task_type=TASK_TYPE,
            question=f"synthetic stored question number {i}",
            reply=reply,
            created_at=now,
            expires_at=now + ttl_s,
        )
        for i in range(count)
    ]


def _entry_columns(entry: SemanticEntry) -> tuple[Any, ...]:
    return (
        entry.entry_id,
        entry.context,
        entry.tenant,
        entry.task_type,
        entry.question,
        entry.reply,
        entry.created_at,
        entry.expires_at,
    )


def write_rows(path: Path, entries: list[SemanticEntry], vectors: NDArray[numpy.float32]) -> None:
    """The bulk rows written straight into the index's table, as another process sharing
    the file would (``UsearchIndex`` takes such rows in on its next operation)."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.executemany(
                "INSERT INTO semantic_entries (entry_id, context, tenant, task_type, question,"
                " reply, created_at, expires_at, dim, vector) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    (*_entry_columns(entry), len(vector), vector.astype("<f4").tobytes())
                    for entry, vector in zip(entries, vectors, strict=True)
                ),
            )
    finally:
        connection.close()


async def fill_helios(
    path: Path,
    embedder: Embedder,
    settings: SemanticCacheSettings,
    texts: SemanticTexts,
    bulk: NDArray[numpy.float32],
    tier: str,
) -> tuple[Any, dict[str, Any]]:
    """The index at ``path`` with the real questions and ``bulk``; timings of each step.

    1. the real questions through ``SemanticCache.store`` (embedding included);
    2. up to ``ADD_SAMPLE`` bulk entries through the public ``add``, one at a time (what a
       store costs the index as it grows);
    3. the rest written as rows by "another process" and taken in by the next search (one
       batch insert into the graph);
    4. the index closed (the graph saved) and opened again, as a restarted server would.
    """
    from helios.cache.backends.usearch import UsearchIndex
    from helios.cache.verifier import HitVerifier

    reply = cached_reply(reply_text())
    timings: dict[str, Any] = {"real_entries": len(texts.stored)}
    index = UsearchIndex(path, embedder.dim)
    filler = SemanticCache(index, embedder, settings, verifier=HitVerifier())
    started = time.perf_counter()
    for question in texts.stored:
        if not await filler.store(request_for(question), tier, reply):
            raise SystemExit(f"L3 did not store {question!r}")
    timings["real_s"] = time.perf_counter() - started
    context = context_of(request_for(texts.stored[0]), tier, embedder.name)
    entries = bulk_entries(context, len(bulk), reply.to_bytes(), settings.ttl_s)
    added = min(ADD_SAMPLE, len(entries))
    started = time.perf_counter()
    for entry, vector in zip(entries[:added], bulk[:added], strict=True):
        await index.add(entry, vector)
    timings["add_entries"] = added
    timings["add_s"] = time.perf_counter() - started
    started = time.perf_counter()
    write_rows(path, entries[added:], bulk[added:])
    timings["rows_written_s"] = time.perf_counter() - started
    started = time.perf_counter()
    await index.search(context, bulk[0], k=1)
    timings["catch_up_s"] = time.perf_counter() - started
    started = time.perf_counter()
    await index.aclose()
    timings["close_s"] = time.perf_counter() - started
    started = time.perf_counter()
    reopened = await UsearchIndex.open(path, embedder.dim)
    timings["open_s"] = time.perf_counter() - started
    report = reopened.load_report
    timings["graphs_from_file"] = report.from_files if report is not None else None
    return reopened, timings


def waterfall(
    runtime: Runtime, index: VectorIndex, embedder: Embedder, settings: SemanticCacheSettings
) -> CacheManager:
    """The manager as the factory builds it, over an empty memory L2 and the given index."""
    from helios.cache.verifier import HitVerifier

    # The component measured, built here: the factory cannot take the shared, pre-filled
    # index nor the timed embedder; the catalogue and provider kinds are the runtime's.
    backend = MemoryBackend(max_entries=10_000)
    # questions come round again across rounds: without this, an L3 hit's exact alias
    # would answer the repeat from L2, and the L3 path would no longer be what is timed
    unaliased = settings.model_copy(update={"alias_hits": False})
    return CacheManager(
        runtime.catalog,
        exact=ExactCache(backend),
        semantic=SemanticCache(index, embedder, unaliased, verifier=HitVerifier()),
        planner=PromptCachePlanner(runtime.catalog),
        warm=WarmPrefixes(backend),
        kind_of=runtime.registry.kind_of,
    )


async def measure_size(
    size: int,
    folder: Path,
    embedder: Any,
    texts: SemanticTexts,
    n: int,
    warmup: int,
    with_peers: bool,
) -> dict[str, Any]:
    # the runtime's own cache stays off: every L3 here is built over the index filled below
    settings = Settings.model_validate({"cache": {"enabled": False}, "ledger": {"enabled": False}})
    async with Runtime.open(settings) as runtime:
        return await _measure_size(runtime, size, folder, embedder, texts, n, warmup, with_peers)


async def _measure_size(
    runtime: Runtime,
    size: int,
    folder: Path,
    embedder: Any,
    texts: SemanticTexts,
    n: int,
    warmup: int,
    with_peers: bool,
) -> dict[str, Any]:
    from helios.cache.verifier import HitVerifier

    provider, model = runtime.registry.parse(MODEL_SPEC)
    tier = CacheManager(runtime.catalog).tier_of(provider, model)
    settings = SemanticCacheSettings(threshold=THRESHOLD)
    bulk = random_units(size - len(texts.stored), embedder.dim, BULK_SEED)

    index, fill = await fill_helios(
        folder / f"l3-{size}.sqlite3", embedder, settings, texts, bulk, tier
    )
    context = context_of(request_for(texts.stored[0]), tier, embedder.name)
    lookup_vectors = await embedder.embed(texts.lookups)
    lookups = [request_for(question) for question in texts.lookups]
    misses = [request_for(question) for question in texts.misses]
    warm = [request_for(question) for question in texts.stored]  # exact hits, never timed

    timed = {name: TimedEmbedder(embedder) for name in ("l3", "hit", "miss")}
    # The int8 build's baseline in the same run: the packaged graph, under the build's name
    # so that it searches the same entries (their vectors agree to 0.9996 cosine).
    packaged = packaged_graph(embedder)
    if packaged is not None:
        await packaged.embed(["load the packaged graph before any timing"])
        timed["packaged"] = TimedEmbedder(packaged)
    layer3 = SemanticCache(index, timed["l3"], settings, verifier=HitVerifier())
    managers = {
        name: waterfall(runtime, index, timed[name], settings)
        for name in ("hit", "miss", "packaged")
        if name in timed
    }

    async def embed_one(i: int) -> Any:
        return await embedder.embed([texts.lookups[i % len(lookups)]])

    async def search_one(i: int) -> Any:
        return await index.search(context, lookup_vectors[i % len(lookups)], k=5)

    async def l3_lookup(i: int) -> Any:
        return await layer3.lookup(lookups[i % len(lookups)], tier)

    async def l3_warm(i: int) -> Any:
        return await layer3.lookup(warm[i % len(warm)], tier)

    def manager_call(name: str, requests: list[Any]) -> Any:
        async def call(i: int) -> Any:
            return await managers[name].lookup(requests[i % len(requests)], provider, model)

        return call

    def layer_outcome(found: Any) -> str:
        return "hit" if found.hit is not None else "miss"

    def manager_outcome(found: Any) -> str:
        return found.layer or "miss"

    def waterfall_arm(label: str, name: str, requests: list[Any]) -> Arm:
        """``managers[name]`` over ``requests``, its embedding timed apart."""
        return Arm(
            label,
            manager_call(name, requests),
            warm=manager_call(name, warm),
            outcome=manager_outcome,
            split_ns=lambda: timed[name].last_ns,
        )

    prefix = f"L3 {size // 1000}k"
    arms = [
        Arm(f"{prefix}: embed alone (OnnxMiniLM, 1 question)", embed_one),
        Arm(f"{prefix}: index.search alone (k=5)", search_one),
        Arm(
            f"{prefix}: SemanticCache.lookup (embed + search + verify)",
            l3_lookup,
            warm=l3_warm,
            outcome=layer_outcome,
            split_ns=lambda: timed["l3"].last_ns,
        ),
        waterfall_arm(f"{prefix}: CacheManager.lookup (L2 miss -> L3)", "hit", lookups),
        waterfall_arm(f"{prefix}: CacheManager.lookup (L2 miss + L3 miss)", "miss", misses),
    ]
    if packaged is not None:

        async def embed_packaged(i: int) -> Any:
            return await packaged.embed([texts.lookups[i % len(lookups)]])

        arms += [
            Arm(f"{prefix}: embed alone, packaged graph", embed_packaged),
            waterfall_arm(f"{prefix}: {PACKAGED_WATERFALL}", "packaged", lookups),
        ]
    unavailable: dict[str, str] = {}
    gpt_fill: dict[str, float] = {}
    if with_peers:
        # the synchronous function that embed() runs in its worker thread: the same model
        gpt = gptcache_semantic(
            lambda text: embedder.embed_now([text])[0], embedder.dim, max_size=size + 10_000
        )
        if isinstance(gpt, str):
            unavailable["GPTCache"] = gpt
        else:
            stored_vectors = await embedder.embed(texts.stored)
            text = reply_text()
            started = time.perf_counter()
            gpt.fill(texts.stored, [text] * len(texts.stored), stored_vectors)
            gpt_fill["real_s"] = time.perf_counter() - started
            started = time.perf_counter()
            gpt.fill(
                [f"synthetic stored question number {i}" for i in range(len(bulk))],
                [text] * len(bulk),
                bulk,
            )
            gpt_fill["bulk_s"] = time.perf_counter() - started

            def gpt_get(i: int) -> Any:
                return gpt.get(texts.lookups[i % len(lookups)])

            arms.append(
                Arm(
                    f"{prefix}: GPTCache get (same embedder, sqlite + faiss)",
                    gpt_get,
                    warm=lambda i: gpt.get(texts.stored[i % len(texts.stored)]),
                    outcome=lambda answer: "hit" if answer is not None else "miss",
                    split_ns=lambda: gpt.embed_ns,
                )
            )
    series = await measure(arms, n, warmup, rounds=3)
    results = {}
    for arm in arms:
        only = "miss" if arm.name.endswith("L3 miss)") else None
        results[arm.name] = describe(series[arm.name], only=only)
    entries = (await index.stats()).entries
    await index.aclose()
    return {
        "size": size,
        "entries": entries,
        "fill_s": fill,
        "gptcache_fill_s": gpt_fill,
        "arms": results,
        "unavailable": unavailable,
        "hits_by_category": hits_by_category(series, arms[2].name, texts),
    }


def packaged_graph(embedder: Any) -> Any:
    """The packaged MiniLM graph named as ``embedder``, when that is the int8 build."""
    from helios.embeddings.onnx import OnnxMiniLM

    if not isinstance(embedder, OnnxMiniLM) or not embedder.int8:
        return None
    return OnnxMiniLM(int8=False, threads=embedder.threads, name=embedder.name)


def hits_by_category(series: dict[str, Any], name: str, texts: SemanticTexts) -> dict[str, Any]:
    """Which looked-up questions L3 answered, by fow-cache category (context, not quality:
    bench/semantic_quality.py is where quality is measured)."""
    counts: dict[str, dict[str, int]] = {}
    for i, outcome in enumerate(series[name].outcomes):
        category = texts.categories[i % len(texts.categories)]
        row = counts.setdefault(category, {"hit": 0, "miss": 0})
        row[outcome] += 1
    return counts
