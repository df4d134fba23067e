"""The peers of bench/cache.py: LiteLLM's exact cache and GPTCache's semantic cache.

They are installed only in the benchmark's own venv (``make bench-cache``), never in the
test environment, so every import here is lazy: a peer that is missing or fails to import
comes back as a reason string, which the benchmark prints in its table instead of a figure.

- **LiteLLM** (``litellm.Cache``, type ``local`` and ``redis``): measured twice, the cache
  object alone (``Cache.async_get_cache``: key + get + decode) and a cache hit through
  ``litellm.acompletion``, which is what a LiteLLM user waits for on a hit.
- **GPTCache** (``gptcache.adapter.api.get``): its sqlite + faiss data manager and its
  distance evaluation, given *the same* MiniLM embedder as Helios (the synchronous
  function that Helios's embedder runs in its worker thread), so that only the machinery
  differs. Its faiss index is a flat (exact) L2 index, which is what GPTCache builds.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LITELLM_MODEL = "gpt-4o-mini"  # any model LiteLLM knows; mock_response means no call is made
GPTCACHE_THRESHOLD = 0.9
"""GPTCache's ``similarity_threshold`` 0.9 accepts what cosine >= 0.8 accepts (its score is
a rescaled L2 distance: threshold t means cosine >= 2t - 1), Helios's L3 threshold here."""


def version_of(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _reason(peer: str, exc: BaseException) -> str:
    return f"{peer} unavailable: {type(exc).__name__}: {exc} (run `make bench-cache`)"


# -- LiteLLM -----------------------------------------------------------------------------
def import_litellm() -> Any:
    """The ``litellm`` module, quiet and offline; raises ImportError when it is missing."""
    # no fetch of the remote model-price map at import (this machine has no internet)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    return litellm


class LiteLLMCache:
    """One ``litellm.Cache`` holding the same replies as Helios's L2 in a measurement."""

    def __init__(self, litellm: Any, kind: str, redis_url: str | None, namespace: str) -> None:
        from litellm.caching.caching import Cache

        self.litellm = litellm
        self.kind = kind
        if kind == "redis":
            assert redis_url is not None
            parts = urlsplit(redis_url)
            db = int(parts.path.lstrip("/") or 0)
            self.cache = Cache(
                type="redis",
                host=parts.hostname or "127.0.0.1",
                port=str(parts.port or 6379),
                db=db,
                namespace=namespace,
            )
        else:
            self.cache = Cache(type="local")

    @staticmethod
    def messages(system: str, question: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": system}, {"role": "user", "content": question}]

    async def fill(self, conversations: Sequence[list[dict[str, str]]], reply: str) -> None:
        """Cache ``reply`` for each conversation the way LiteLLM does: through a call."""
        self.litellm.cache = self.cache
        for messages in conversations:
            await self.litellm.acompletion(
                model=LITELLM_MODEL, messages=messages, mock_response=reply, caching=True
            )
        await self._settle()
        for messages in conversations[:3]:
            if await self.get(messages) is None or not await self.completion_hit(messages):
                raise RuntimeError(f"LiteLLM {self.kind} cache did not keep the replies")

    async def get(self, messages: list[dict[str, str]]) -> Any:
        return await self.cache.async_get_cache(model=LITELLM_MODEL, messages=messages)

    async def completion(self, messages: list[dict[str, str]]) -> Any:
        # a miss would answer "MISS" without any network call; completion_hit checks
        return await self.litellm.acompletion(
            model=LITELLM_MODEL, messages=messages, mock_response="MISS", caching=True
        )

    async def completion_hit(self, messages: list[dict[str, str]]) -> bool:
        response = await self.completion(messages)
        return bool(response._hidden_params.get("cache_hit"))

    async def _settle(self) -> None:
        """LiteLLM writes the cache from a background task after the call returns."""
        import asyncio

        await asyncio.sleep(0.3)

    async def aclose(self) -> None:
        self.litellm.cache = None
        if self.kind == "redis":
            await self.cache.disconnect()


def litellm_cache(kind: str, redis_url: str | None, namespace: str) -> LiteLLMCache | str:
    try:
        return LiteLLMCache(import_litellm(), kind, redis_url, namespace)
    except Exception as exc:  # a peer that cannot load is reported, never fatal
        return _reason("LiteLLM", exc)


# -- GPTCache ----------------------------------------------------------------------------
class GPTCacheSemantic:
    """GPTCache 0.1.x with sqlite + faiss and a given synchronous embedding function.

    ``embed_ns`` is the time the last lookup spent in the embedding function, so that the
    benchmark can split each lookup into embedding and GPTCache's own machinery.
    """

    def __init__(self, folder: Path, embed: Callable[[str], Any], dim: int, max_size: int):
        from gptcache import Cache, Config
        from gptcache.manager import CacheBase, VectorBase, get_data_manager
        from gptcache.processor.pre import get_prompt
        from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation

        self._embed = embed
        self.embed_ns = 0
        self.data_manager = get_data_manager(
            CacheBase("sqlite", sql_url=f"sqlite:///{folder / 'gptcache.db'}"),
            VectorBase("faiss", dimension=dim, index_path=str(folder / "faiss.index")),
            max_size=max_size,  # its default (1,000) would evict the bulk entries
        )
        self.cache = Cache()
        self.cache.init(
            pre_embedding_func=get_prompt,
            embedding_func=self._timed_embed,
            data_manager=self.data_manager,
            similarity_evaluation=SearchDistanceEvaluation(),
            config=Config(similarity_threshold=GPTCACHE_THRESHOLD),
        )

    def _timed_embed(self, data: str, **_: Any) -> Any:
        started = time.perf_counter_ns()
        vector = self._embed(data)
        self.embed_ns = time.perf_counter_ns() - started
        return vector

    def fill(self, questions: Sequence[str], answers: Sequence[str], vectors: Any) -> None:
        """Bulk import (its own ``import_data``), in chunks so that SQLAlchemy stays sane."""
        step = 5000
        for start in range(0, len(questions), step):
            stop = min(len(questions), start + step)
            self.data_manager.import_data(
                list(questions[start:stop]),
                list(answers[start:stop]),
                list(vectors[start:stop]),
                [None] * (stop - start),
            )

    def get(self, question: str) -> Any:
        from gptcache.adapter.api import get

        return get(question, cache_obj=self.cache)


def gptcache_semantic(
    embed: Callable[[str], Any], dim: int, max_size: int
) -> GPTCacheSemantic | str:
    """GPTCache in a folder of its own, removed at exit *after* GPTCache's own exit hook
    (which saves its faiss index there): hooks run last-registered first."""
    folder = Path(tempfile.mkdtemp(prefix="helios-bench-gptcache-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    try:
        return GPTCacheSemantic(folder, embed, dim, max_size)
    except Exception as exc:  # a peer that cannot load is reported, never fatal
        return _reason("GPTCache", exc)


def peer_versions() -> dict[str, str | None]:
    return {
        name: version_of(name)
        for name in ("gptcache", "faiss-cpu", "SQLAlchemy", "litellm", "redis", "hiredis")
    }
