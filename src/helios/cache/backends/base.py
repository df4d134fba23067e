"""The cache backend contract: bytes in, bytes out, with a time to live.

Everything above a backend (keys, serialization, metrics, fail-open behaviour) lives once
in the cache layers (:mod:`helios.cache.exact`); a backend only stores values. Keys are
strings with ``:``-separated namespaces (``l2:<tenant>:<task_type>:<hash>``,
``evidence:<hash>``) so that ``scan(prefix)`` can find a namespace for invalidation.

Each entry also keeps how often and when it was last read (:class:`EntryInfo`), so that an
operator can see which cached replies earn their keep. One rule on every backend: ``set``
makes a new entry (count 0, never accessed), every ``get`` that returns a value counts one
access, and looking at an entry (``info``, ``entries``) counts nothing.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from helios.breaker import CircuitBreaker

Clock = Callable[[], float]
"""Seconds since the epoch; injectable so that tests can expire entries."""


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """What a backend knows about one live entry; times are seconds since the epoch by the
    backend's ``clock`` (Redis: see its module docstring for ``expires_at``)."""

    key: str
    size_bytes: int
    """Length of the stored value."""
    access_count: int
    """Gets that returned this value since it was set; a replacing ``set`` starts at 0."""
    last_access: float | None
    """When the last such get happened; ``None`` when there was none."""
    created_at: float
    expires_at: float | None
    """``None``: no TTL."""


def recency_order(info: EntryInfo) -> tuple[bool, float, str]:
    """Sort key: most recently accessed first, never accessed last, then by key, so that
    every backend lists the same entries in the same order."""
    never = info.last_access is None
    return never, 0.0 if info.last_access is None else -info.last_access, info.key


def most_recent_first(infos: Iterable[EntryInfo], limit: int) -> list[EntryInfo]:
    return sorted(infos, key=recency_order)[:limit]


def check_limit(limit: int) -> None:
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")


class CacheBackend(ABC):
    """Stores values under keys until they expire; safe for concurrent use on one loop."""

    name: str
    breaker: CircuitBreaker | None = None
    """The deadline and circuit breaker of a backend on a network store (``None``: local)."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock

    @property
    def read_only(self) -> bool:
        """Whether the store can only be read (hits served, stores skipped)."""
        return False

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

    @abstractmethod
    async def info(self, key: str) -> EntryInfo | None:
        """Counters and times of one entry, ``None`` when absent or expired; not an access."""

    async def entries(self, prefix: str = "", limit: int = 100) -> list[EntryInfo]:
        """Up to ``limit`` live entries under ``prefix`` in :func:`recency_order`; not an
        access. One ``info`` per key here; backends may do better."""
        check_limit(limit)
        keys = [key async for key in self.scan(prefix)]
        infos = [await self.info(key) for key in keys]
        # an entry may expire or go between the scan and its info
        return most_recent_first((info for info in infos if info is not None), limit)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files; the default holds none."""
