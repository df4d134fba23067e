"""The cache backend contract: bytes in, bytes out, with a time to live.

Everything above a backend (keys, serialization, metrics, fail-open behaviour) lives once
in the cache layers (:mod:`helios.cache.exact`); a backend only stores values. Keys are
strings with ``:``-separated namespaces (``l2:<tenant>:<task_type>:<hash>``,
``evidence:<hash>``) so that ``scan(prefix)`` can find a namespace for invalidation.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable

Clock = Callable[[], float]
"""Seconds since the epoch; injectable so that tests can expire entries."""


class CacheBackend(ABC):
    """Stores values under keys until they expire; safe for concurrent use on one loop."""

    name: str

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value, or ``None`` when absent or expired."""

    @abstractmethod
    async def set(self, key: str, value: bytes, *, ttl_s: float | None) -> None:
        """Store ``value``; ``ttl_s=None`` keeps it until evicted or deleted."""

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove one key; ``True`` when something was removed."""

    @abstractmethod
    def scan(self, prefix: str = "") -> AsyncIterator[str]:
        """The live keys starting with ``prefix`` (expired ones are skipped)."""

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key under ``prefix``; the count removed. Backends may do better."""
        doomed = [key async for key in self.scan(prefix)]
        removed = 0
        for key in doomed:
            removed += await self.delete(key)
        return removed

    @abstractmethod
    async def count(self, prefix: str = "") -> int:
        """How many live keys start with ``prefix``."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files; the default holds none."""
