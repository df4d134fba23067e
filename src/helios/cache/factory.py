"""Build the cache the settings describe: L2 backend, L1 planner, L3 index and embedder.

Optional parts degrade rather than fail: without the ``semantic`` extra (usearch, numpy,
onnxruntime) L3 is left out with a warning and ``/health`` says why; everything else
works. A setting that is wrong (pgvector without a URL) is a :class:`ConfigError`.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable

from helios.cache.backends.base import CacheBackend
from helios.cache.backends.memory import MemoryBackend
from helios.cache.backends.sqlite import SQLiteBackend
from helios.cache.backends.vector import VectorIndex
from helios.cache.exact import ExactCache
from helios.cache.manager import CacheManager
from helios.cache.prompt import PromptCachePlanner, WarmPrefixes
from helios.cache.semantic import SemanticCache
from helios.catalog import Catalog
from helios.config.cache import CacheSettings
from helios.config.settings import Settings
from helios.embeddings.base import Embedder
from helios.errors import ConfigError

logger = logging.getLogger(__name__)

_SEMANTIC_MODULES = ("numpy", "usearch", "onnxruntime", "tokenizers", "rapidfuzz")


def l2_backend(settings: CacheSettings) -> CacheBackend:
    if settings.backend == "memory":
        return MemoryBackend(max_entries=settings.max_entries)
    if settings.backend == "redis":
        if not settings.redis_url:
            raise ConfigError("cache.redis_url must be set when cache.backend is 'redis'")
        from helios.cache.backends.redis import RedisBackend  # redis is an optional extra

        return RedisBackend(
            settings.redis_url, prefix=settings.redis_prefix, breaker=settings.redis_breaker
        )
    return SQLiteBackend(settings.resolved_path(), max_entries=settings.max_entries)


def semantic_unavailable(settings: Settings) -> str | None:
    """Why L3 cannot run with what is installed, or ``None`` when it can."""
    semantic = settings.cache.semantic
    needed = [m for m in _SEMANTIC_MODULES if m != "usearch" or semantic.index == "usearch"]
    if semantic.index == "pgvector":
        needed.append("psycopg")
    if semantic.embedder == "openai":
        needed = [m for m in needed if m not in ("onnxruntime", "tokenizers")] + ["openai"]
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        return f"L3 needs {', '.join(missing)}: pip install 'helios[semantic]'"
    return None


def vector_index(settings: CacheSettings, dim: int) -> VectorIndex:
    semantic = settings.semantic
    if semantic.index == "pgvector":
        if not semantic.postgres_url:
            raise ConfigError(
                "cache.semantic.postgres_url must be set when cache.semantic.index is 'pgvector'"
            )
        from helios.cache.backends.pgvector import PgvectorIndex

        return PgvectorIndex(
            semantic.postgres_url, dim, table=semantic.table, breaker=semantic.postgres_breaker
        )
    from helios.cache.backends.usearch import UsearchIndex

    return UsearchIndex(settings.semantic_path(), dim)


def semantic_embedder(settings: Settings) -> Embedder:
    if settings.cache.semantic.embedder == "openai":
        from helios.embeddings.openai import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(settings)
    from helios.embeddings.onnx import OnnxMiniLM

    return OnnxMiniLM.from_settings(settings.embeddings)


def semantic_cache(settings: Settings) -> SemanticCache | None:
    reason = semantic_unavailable(settings)
    if reason is not None:
        logger.warning("semantic cache disabled: %s", reason)
        return None
    from helios.cache.verifier import HitVerifier

    embedder = semantic_embedder(settings)
    return SemanticCache(
        vector_index(settings.cache, embedder.dim),
        embedder,
        settings.cache.semantic,
        verifier=HitVerifier(aligned_threshold=settings.cache.semantic.aligned_threshold),
    )


def cache_manager(
    settings: Settings, catalog: Catalog, *, kind_of: Callable[[str], str] = str
) -> CacheManager | None:
    """The cache of ``settings``, or ``None`` when ``cache.enabled`` is false. ``kind_of``:
    a provider name's adapter kind (the registry's :meth:`kind_of`)."""
    config = settings.cache
    if not config.enabled:
        return None
    backend = l2_backend(config)
    planner = PromptCachePlanner(catalog, ttl=config.prompt.ttl) if config.prompt.enabled else None
    manager = CacheManager(
        catalog,
        exact=ExactCache(backend, ttl_s=config.ttl_s),
        semantic=semantic_cache(settings) if config.semantic.enabled else None,
        planner=planner,
        # warm prefixes live in the L2 store, so every process sharing it shares them
        warm=WarmPrefixes(backend) if planner is not None else None,
        kind_of=kind_of,
    )
    if config.semantic.enabled and manager.semantic is None:
        manager.unavailable["L3"] = semantic_unavailable(settings) or "unavailable"
    return manager
