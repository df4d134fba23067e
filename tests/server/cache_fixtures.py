"""Helpers for the cache API tests: a real three-layer cache on local parts, and a broken L2.

The cache is built the way :func:`helios.cache.factory.cache_manager` builds it (memory L2,
L1 planner with warm prefixes in the L2 store, L3 on a usearch index in the test's
directory with the real local embedder and verifier), but from parts, so that a test can
put a failing backend in L2.

Importing this module loads onnxruntime first: usearch 2.26.6 loaded before onnxruntime
1.31.1 makes onnxruntime's import crash the process (SIGSEGV), and a crash would take the
whole test session with it. The application's own import order is left as it is, so that
``tests/cli/test_cache_cli.py::test_serve_answers_the_cache_api`` still shows it.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
from fastapi import FastAPI

from helios.cache.backends.base import CacheBackend, EntryInfo
from helios.cache.backends.memory import MemoryBackend
from helios.cache.exact import ExactCache
from helios.cache.manager import CacheManager
from helios.cache.prompt import PromptCachePlanner, WarmPrefixes
from helios.cache.semantic import SemanticCache
from helios.catalog import Catalog
from helios.config.cache import SemanticCacheSettings
from helios.errors import CacheBackendError
from helios.keys.model import ApiKey, NewKey
from helios.keys.sqlite import SQLiteKeyStore

importlib.import_module("onnxruntime")  # before usearch: see the module docstring


class BrokenBackend(MemoryBackend):
    """A store that is down: every operation raises, as a refused connection would."""

    name = "redis 127.0.0.1:1"

    def _down(self) -> CacheBackendError:
        return CacheBackendError(f"{self.name}: connection refused")

    async def get(self, key: str) -> bytes | None:
        raise self._down()

    async def set(self, key: str, value: bytes, *, ttl_s: float | None) -> None:
        raise self._down()

    async def delete(self, key: str) -> bool:
        raise self._down()

    async def delete_prefix(self, prefix: str) -> int:
        raise self._down()

    async def count(self, prefix: str = "") -> int:
        raise self._down()

    async def info(self, key: str) -> EntryInfo | None:
        raise self._down()

    async def entries(self, prefix: str = "", limit: int = 100) -> list[EntryInfo]:
        raise self._down()


def build_manager(
    tmp_path: Path,
    *,
    backend: CacheBackend | None = None,
    semantic: bool = True,
) -> CacheManager:
    from helios.cache.backends.usearch import UsearchIndex
    from helios.cache.verifier import HitVerifier
    from helios.embeddings.onnx import OnnxMiniLM

    catalog = Catalog.load()
    store = backend if backend is not None else MemoryBackend()
    layer3 = None
    if semantic:
        embedder = OnnxMiniLM()
        layer3 = SemanticCache(
            UsearchIndex(tmp_path / "semantic.sqlite3", embedder.dim),
            embedder,
            SemanticCacheSettings(),
            verifier=HitVerifier(),
        )
    planner = PromptCachePlanner(catalog)
    return CacheManager(
        catalog,
        exact=ExactCache(store, ttl_s=3600.0),
        semantic=layer3,
        planner=planner,
        warm=WarmPrefixes(store),
    )


@asynccontextmanager
async def client_for(app: FastAPI, key: str | None = None) -> AsyncIterator[httpx2.AsyncClient]:
    """The app with its lifespan running, reached through the ASGI transport; every request
    carries ``key`` (``Authorization: Bearer``) when one is given."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", headers=headers
        ) as client:
            yield client


async def create_key(path: Path, tenant: str = "acme", **fields: Any) -> tuple[ApiKey, str]:
    """A key in the SQLite key store at ``path``: its record and the key itself."""
    store = SQLiteKeyStore(path)
    try:
        return await store.create(NewKey(tenant=tenant, **fields))
    finally:
        await store.aclose()
