"""An in-process LRU backend: the fastest store, gone with the process.

Bounded twice, by entry count and by bytes, because one long reply must not be able to
grow the process without limit. Every operation runs without awaiting, so on one event
loop each is atomic and needs no lock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from helios.cache.backends.base import (
    CacheBackend,
    Clock,
    EntryInfo,
    check_limit,
    most_recent_first,
)

MIB = 1024 * 1024


@dataclass(slots=True)
class _Entry:
    """Mutable only in its access counters, which ``get`` moves in place."""

    value: bytes
    expires_at: float | None
    size: int
    created_at: float
    access_count: int = 0
    last_access: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def info(self, key: str) -> EntryInfo:
        return EntryInfo(
            key=key,
            size_bytes=len(self.value),
            access_count=self.access_count,
            last_access=self.last_access,
            created_at=self.created_at,
            expires_at=self.expires_at,
        )


class MemoryBackend(CacheBackend):
    """Least-recently-used eviction past ``max_entries`` or ``max_bytes``.

    An entry's size is its value's bytes plus its key's characters. Expired entries are
    dropped when they are met (get, scan, count) and before any live entry is evicted.
    """

    name = "memory"

    def __init__(
        self,
        *,
        max_entries: int = 500,
        max_bytes: int = 64 * MIB,
        clock: Clock = time.time,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        super().__init__(clock=clock)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        """Bytes held now, expired entries not yet purged included."""
        return self._bytes

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self.clock()
        if entry.expired(now):
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        entry.access_count += 1
        entry.last_access = now
        return entry.value

    async def set(self, key: str, value: bytes, *, ttl_s: float | None) -> None:
        self._remove(key)
        if ttl_s is not None and ttl_s <= 0:
            return
        size = len(value) + len(key)
        if size > self.max_bytes:
            return  # could never fit; storing it would only flush everything else
        now = self.clock()
        expires_at = None if ttl_s is None else now + ttl_s
        self._entries[key] = _Entry(bytes(value), expires_at, size, created_at=now)
        self._bytes += size
        if len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._purge_expired()
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._remove(oldest)

    async def delete(self, key: str) -> bool:
        entry = self._entries.get(key)
        if entry is None:
            return False
        self._remove(key)
        return not entry.expired(self.clock())

    async def scan(self, prefix: str = "") -> AsyncIterator[str]:
        for key in self._live_keys(prefix):
            yield key

    async def delete_prefix(self, prefix: str) -> int:
        doomed = self._live_keys(prefix)
        for key in doomed:
            self._remove(key)
        return len(doomed)

    async def count(self, prefix: str = "") -> int:
        return len(self._live_keys(prefix))

    async def info(self, key: str) -> EntryInfo | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expired(self.clock()):
            self._remove(key)
            return None
        return entry.info(key)

    async def entries(self, prefix: str = "", limit: int = 100) -> list[EntryInfo]:
        check_limit(limit)
        live = self._live_keys(prefix)
        return most_recent_first((self._entries[key].info(key) for key in live), limit)

    async def aclose(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _live_keys(self, prefix: str) -> list[str]:
        """A snapshot, so callers may delete while they iterate."""
        self._purge_expired()
        return [key for key in self._entries if key.startswith(prefix)]

    def _purge_expired(self) -> None:
        now = self.clock()
        for key in [key for key, entry in self._entries.items() if entry.expired(now)]:
            self._remove(key)

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size
