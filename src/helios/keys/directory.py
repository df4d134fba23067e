"""The keys as a long-running process sees them: what it read, trusted for a few seconds.

A server checks a key on every request and the governor reads a key's budget on every
reservation; reading the store each time would put a database round trip (and, on SQLite,
a thread hop) on every call. :class:`KeyDirectory` keeps each row it read for ``ttl_s``
(``keys.cache_s``), so a key revoked by another process (``helios keys revoke``) stops
working within that time; a key revoked or created through this process's own admin API
counts at once (:meth:`forget`). Expiry needs no store: it is checked against the clock
on every call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from helios.keys.model import ApiKey, is_key_id
from helios.keys.store import KeyStore, StoredKey, authenticate

Clock = Callable[[], float]
MAX_ENTRIES = 10_000  # rows kept; past this the cache starts afresh (ids guessed at random)


class KeyDirectory:
    def __init__(
        self, store: KeyStore, *, ttl_s: float = 5.0, clock: Clock = time.monotonic
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock
        self._rows: dict[str, tuple[float, StoredKey | None]] = {}
        self._any: tuple[float, bool] | None = None

    async def lookup(self, key_id: str) -> StoredKey | None:
        """The row of ``key_id`` (``None``: no such key), from the store at most every
        ``ttl_s``."""
        now = self.clock()
        cached = self._rows.get(key_id)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        row = await self.store.lookup(key_id) if is_key_id(key_id) else None
        if len(self._rows) >= MAX_ENTRIES:
            self._rows.clear()
        self._rows[key_id] = (now, row)
        return row

    async def get(self, key_id: str) -> ApiKey | None:
        row = await self.lookup(key_id)
        return None if row is None else row.key

    async def authenticate(self, presented: str, *, now: float | None = None) -> ApiKey:
        """The active key ``presented`` is, or :class:`~helios.errors.KeyRejected`."""
        return await authenticate(presented, self.lookup, time.time() if now is None else now)

    async def any_keys(self) -> bool:
        """Whether any key exists. Once one does it always will (keys are revoked, never
        deleted), so only ``False`` is read again, every ``ttl_s``."""
        now = self.clock()
        if self._any is not None and (self._any[1] or now - self._any[0] < self.ttl_s):
            return self._any[1]
        found = await self.store.any_keys()
        self._any = (now, found)
        return found

    def forget(self, key_id: str) -> None:
        """Drop what was read about ``key_id`` and about whether keys exist: this process
        just created or revoked it."""
        self._rows.pop(key_id, None)
        self._any = None
