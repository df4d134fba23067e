"""L3 with a local embedder and a local index: embedding and search in one worker thread."""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy
import pytest
from numpy.typing import NDArray

from helios.cache.backends.usearch import UsearchIndex
from helios.cache.backends.vector import VectorMatch
from helios.cache.semantic import SemanticCache
from helios.cache.verifier import HitVerifier
from helios.config.cache import SemanticCacheSettings
from helios.embeddings.base import Embedder
from helios.messages import Request
from tests.cache.conftest import one_chunk_reply

TIER = "balanced"
QUESTION = "how do I reset my password"
PARAPHRASE = "how do I reset my password please"
ANSWER = "Open Settings, then Security, then Reset."


class LocalWords(Embedder):
    """In-process and instant (hashed bag of words); records where and how it was called."""

    name = "local-words"
    dim = 64
    in_process = True

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, int]] = []

    async def embed(self, texts: Sequence[str]) -> NDArray[numpy.float32]:
        self.calls.append(("embed", threading.get_ident()))
        return self._vectors(texts)

    def embed_now(self, texts: Sequence[str]) -> NDArray[numpy.float32]:
        self.calls.append(("embed_now", threading.get_ident()))
        if self.fail:
            raise RuntimeError("the model file vanished")
        return self._vectors(texts)

    def _vectors(self, texts: Sequence[str]) -> NDArray[numpy.float32]:
        vectors = numpy.zeros((len(texts), self.dim), dtype=numpy.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                vectors[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        unit: NDArray[numpy.float32] = vectors / numpy.linalg.norm(vectors, axis=1, keepdims=True)
        return unit


class RecordedIndex(UsearchIndex):
    """The real index; remembers the thread of each blocking search."""

    searched_on: list[int]

    def search_now(
        self, context: str, vector: NDArray[numpy.float32], *, k: int
    ) -> list[VectorMatch]:
        self.searched_on.append(threading.get_ident())
        return super().search_now(context, vector, k=k)


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[RecordedIndex]:
    index = RecordedIndex(tmp_path / "l3.sqlite3", LocalWords.dim)
    index.searched_on = []
    yield index
    await index.aclose()


def layer(index: RecordedIndex, embedder: Embedder) -> SemanticCache:
    settings = SemanticCacheSettings(threshold=0.8)
    return SemanticCache(index, embedder, settings, verifier=HitVerifier())


async def test_a_lookup_embeds_and_searches_in_the_same_worker_thread(
    index: RecordedIndex,
) -> None:
    embedder = LocalWords()
    cache = layer(index, embedder)
    assert await cache.store(Request.of(QUESTION), TIER, one_chunk_reply(ANSWER))
    embedder.calls.clear()

    found = await cache.lookup(Request.of(PARAPHRASE), TIER)

    assert found.hit is not None and found.hit.matched_question == QUESTION
    ((how, thread),) = embedder.calls
    assert how == "embed_now" and index.searched_on == [thread]
    assert thread != threading.get_ident()  # off the event loop


async def test_the_looked_up_vector_is_kept_for_the_store_that_follows_a_miss(
    index: RecordedIndex,
) -> None:
    embedder = LocalWords()
    cache = layer(index, embedder)

    missed = await cache.lookup(Request.of(QUESTION), TIER)
    assert missed.hit is None and missed.error is None
    assert await cache.store(Request.of(QUESTION), TIER, one_chunk_reply(ANSWER))

    assert [how for how, _thread in embedder.calls] == ["embed_now"]  # embedded once


async def test_a_failing_local_embedder_is_a_miss_counted_as_an_error(
    index: RecordedIndex,
) -> None:
    cache = layer(index, LocalWords(fail=True))

    found = await cache.lookup(Request.of(QUESTION), TIER)

    assert found.hit is None and found.checked
    assert found.error is not None and "local-words failed: the model file vanished" in found.error
    assert cache.counts.errors == 1 and cache.counts.misses == 1
    assert index.searched_on == []


async def test_an_embedder_with_io_is_awaited_and_the_index_searched_after(
    index: RecordedIndex,
) -> None:
    embedder = LocalWords()
    embedder.in_process = False  # as a remote API's embedder is
    cache = layer(index, embedder)
    assert await cache.store(Request.of(QUESTION), TIER, one_chunk_reply(ANSWER))
    embedder.calls.clear()

    found = await cache.lookup(Request.of(PARAPHRASE), TIER)

    assert found.hit is not None
    assert [how for how, _thread in embedder.calls] == ["embed"]
    assert len(index.searched_on) == 1  # the async search runs search_now in its thread


def test_embedders_and_indexes_with_io_refuse_the_blocking_calls() -> None:
    class Remote(Embedder):
        name, dim = "remote", 4

        async def embed(self, texts: Sequence[str]) -> NDArray[numpy.float32]:
            return numpy.zeros((len(texts), 4), dtype=numpy.float32)

    with pytest.raises(NotImplementedError, match="await embed"):
        Remote().embed_now(["a question"])
