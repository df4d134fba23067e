"""The shared backend: one Redis server, seen by every process on every host that uses it.

Keys are stored as ``<prefix>:<key>`` (prefix ``helios:cache``), each a hash: ``v`` the
value (raw bytes), ``c`` when it was set, ``n`` its access count and ``a`` its last access
(seconds since the epoch by the injected ``clock``, so every client writes its own clock's
time). A hash rather than a counter key beside a string value, because one key has one TTL:
the counters can never outlive their value or lose theirs, and SCAN/UNLINK invalidation
stays one key per entry. A hit is one round trip, a Lua script (``EVALSHA``) that reads the
value and counts the access atomically on the server, so a miss never creates a key. A key
of another type (a string value from before the counters) reads as a miss and is dropped.

Where Redis differs from the memory and SQLite backends:

- **Expiry is the server's.** ``set`` passes the TTL as ``PX`` (milliseconds, rounded up),
  so the server's clock decides, not the injected ``clock`` (kept for the contract only);
  an expired key is gone for ``get``, ``scan``, ``count`` and ``delete`` alike.
  ``EntryInfo.expires_at`` is the client's ``clock()`` plus the server's ``PTTL``: close,
  not exact.
- **No ``max_entries``.** Size is bounded by the server's ``maxmemory`` with a policy such
  as ``allkeys-lru`` (approximate LRU over the whole server, by memory rather than count)
  or ``volatile-lru``; without one, entries live until they expire or are deleted.
- **Scans are SCAN.** ``scan``/``count``/``delete_prefix`` walk the keyspace with
  ``SCAN MATCH`` (never ``KEYS``), so they do not block the server but are not a snapshot:
  a key written or removed meanwhile may or may not be seen. Keys come back unordered.

Every driver error becomes :class:`CacheBackendError` naming the server as ``host:port``
(never the password), which the cache layers treat as a miss. Every operation runs under a
:class:`~helios.breaker.CircuitBreaker` (``cache.redis_breaker``): a deadline of 50 ms by
default, and after 3 failures or timeouts in a row the circuit opens and operations fail at
once, without a network round trip, until a probe after the cool-down (5 s) finds the
server again. A Redis that hangs costs a lookup the deadline a few times, then nothing;
one that refuses connections fails at once anyway. A paged operation (a scan, ``count``,
``delete_prefix``) has the deadline per page, and ``entries`` per round trip of
``INFO_COUNT`` keys.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from helios.breaker import CircuitBreaker
from helios.cache.backends.base import (
    CacheBackend,
    Clock,
    EntryInfo,
    check_limit,
    most_recent_first,
)
from helios.config.breaker import BreakerSettings
from helios.errors import CacheBackendError

T = TypeVar("T")

SCAN_COUNT = 500
"""Keys the server examines per SCAN call (a hint), and keys per UNLINK."""
INFO_COUNT = 100
"""Keys whose metadata ``entries`` reads per round trip: each runs a Lua script, so a whole
SCAN page in one pipeline is work enough to pass the deadline on a busy server (and a
listing's timeouts would open the circuit that lookups share)."""
_GLOB_SPECIAL = frozenset("*?[]\\")
# UnicodeError: a key with a lone surrogate cannot be encoded as UTF-8
_DRIVER_ERRORS = (RedisError, OSError, UnicodeError)
# what says the server is out of reach (an error reply such as WRONGTYPE is an answer)
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)

# KEYS[1]: the entry, ARGV[1]: now. redis.pcall hands back a WRONGTYPE error as a table.
_HIT_SCRIPT = """
local value = redis.pcall('HGET', KEYS[1], 'v')
if type(value) == 'table' then
  redis.call('UNLINK', KEYS[1])
  return false
end
if value then
  redis.call('HINCRBY', KEYS[1], 'n', 1)
  redis.call('HSET', KEYS[1], 'a', ARGV[1])
end
return value
"""
# KEYS[1]: the entry -> {value length, created at, count, last access or nil, PTTL}
_INFO_SCRIPT = """
local fields = redis.pcall('HMGET', KEYS[1], 'c', 'n', 'a')
if fields.err or not fields[1] then
  return false
end
local size = redis.call('HSTRLEN', KEYS[1], 'v')
return {size, fields[1], fields[2], fields[3], redis.call('PTTL', KEYS[1])}
"""
InfoReply = list[Any] | None
"""What ``_INFO_SCRIPT`` returns, as the driver hands it over (numbers and bytes)."""


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis ``MATCH`` pattern."""
    return "".join("\\" + char if char in _GLOB_SPECIAL else char for char in text)


def redis_address(url: str) -> str:
    """``host:port`` (or the socket path) of a Redis URL, without user or password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path or "?"
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    return f"{parts.hostname or 'localhost'}:{port}"


def _as_bytes(value: bytes | str) -> bytes:
    """The client is built without ``decode_responses``, so replies are bytes already."""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


class RedisBackend(CacheBackend):
    """Values under ``<prefix>:<key>`` with native TTLs; see the module docstring."""

    name = "redis"
    breaker: CircuitBreaker

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "helios:cache",
        clock: Clock = time.time,
        socket_timeout_s: float = 2.0,
        breaker: BreakerSettings | None = None,
    ) -> None:
        """``socket_timeout_s`` bounds the driver's own waits (connecting, reading);
        ``breaker`` the operations (default: :class:`BreakerSettings` with a 50 ms deadline)."""
        super().__init__(clock=clock)
        self.prefix = prefix
        self.address = redis_address(url)
        self._stem = f"{prefix}:"
        try:
            self._client: Redis = Redis.from_url(
                url,
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=socket_timeout_s,
                retry=Retry(NoBackoff(), 1),
            )
        except (*_DRIVER_ERRORS, ValueError) as exc:
            raise CacheBackendError(f"Redis cache at {self.address}: bad URL: {exc}") from None
        guard = breaker if breaker is not None else BreakerSettings(deadline_s=0.05)
        self.breaker = CircuitBreaker(
            f"Redis cache at {self.address}",
            error=lambda message, _retry_after: CacheBackendError(message),
            trips=lambda exc: isinstance(exc, _UNREACHABLE),
            deadline_s=guard.deadline_s,
            failures=guard.failures,
            cooldown_s=guard.cooldown_s,
        )
        self._hit = self._client.register_script(_HIT_SCRIPT)
        self._info = self._client.register_script(_INFO_SCRIPT)
        self._closed = False

    async def get(self, key: str) -> bytes | None:
        value = await self._run("GET", self._hit(keys=[self._full(key)], args=[self.clock()]))
        return None if value is None else _as_bytes(value)

    async def set(self, key: str, value: bytes, *, ttl_s: float | None) -> None:
        full = self._full(key)
        if ttl_s is not None and ttl_s <= 0:
            await self._run("SET", self._client.unlink(full))
            return
        # one MULTI: the old hash (fields, counters, TTL) goes and the new one comes whole
        pipe = self._client.pipeline(transaction=True)
        pipe.unlink(full)
        pipe.hset(full, mapping={"v": bytes(value), "n": 0, "c": self.clock()})
        if ttl_s is not None:
            pipe.pexpire(full, max(1, math.ceil(ttl_s * 1000)))
        await self._run("SET", pipe.execute())

    async def delete(self, key: str) -> bool:
        return bool(await self._run("UNLINK", self._client.unlink(self._full(key))))

    async def scan(self, prefix: str = "") -> AsyncIterator[str]:
        seen: set[bytes] = set()  # SCAN may return a key twice while the table rehashes
        async for batch in self._scan_batches(prefix):
            for raw in batch:
                if raw not in seen:
                    seen.add(raw)
                    yield raw.decode("utf-8")[len(self._stem) :]

    async def delete_prefix(self, prefix: str) -> int:
        # UNLINK counts only keys that existed, so a key SCAN returns twice counts once
        removed = 0
        async for batch in self._scan_batches(prefix):
            pipe = self._client.pipeline(transaction=False)
            for start in range(0, len(batch), SCAN_COUNT):
                pipe.unlink(*batch[start : start + SCAN_COUNT])
            counts: list[int] = await self._run("UNLINK", pipe.execute())
            removed += sum(counts)
        return removed

    async def count(self, prefix: str = "") -> int:
        seen: set[bytes] = set()
        async for batch in self._scan_batches(prefix):
            seen.update(batch)
        return len(seen)

    async def info(self, key: str) -> EntryInfo | None:
        reply: InfoReply = await self._run("INFO", self._info(keys=[self._full(key)]))
        return self._entry_info(key, reply)

    async def entries(self, prefix: str = "", limit: int = 100) -> list[EntryInfo]:
        check_limit(limit)
        found: list[EntryInfo] = []
        seen: set[bytes] = set()
        async for batch in self._scan_batches(prefix):
            fresh = [raw for raw in batch if raw not in seen]
            seen.update(fresh)
            for start in range(0, len(fresh), INFO_COUNT):
                found += await self._infos(fresh[start : start + INFO_COUNT])
        return most_recent_first(found, limit)

    async def _infos(self, full_keys: Sequence[bytes]) -> list[EntryInfo]:
        """Metadata of these keys in one round trip, leaving out those gone since the scan."""
        pipe = self._client.pipeline(transaction=False)
        for raw in full_keys:
            await self._info(keys=[raw], client=pipe)
        replies: list[InfoReply] = await self._run("INFO", pipe.execute())
        infos = (
            self._entry_info(raw.decode("utf-8")[len(self._stem) :], reply)
            for raw, reply in zip(full_keys, replies, strict=True)
        )
        return [info for info in infos if info is not None]

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.breaker.aclose()
        # closing a connection that is already broken is not worth reporting
        with contextlib.suppress(*_DRIVER_ERRORS):
            await self._client.aclose()

    def _full(self, key: str) -> str:
        return self._stem + key

    def _entry_info(self, key: str, reply: InfoReply) -> EntryInfo | None:
        if reply is None:
            return None
        size, created_at, count, last_access, pttl = reply
        return EntryInfo(
            key=key,
            size_bytes=int(size),
            access_count=0 if count is None else int(count),
            last_access=None if last_access is None else float(last_access),
            created_at=float(created_at),
            expires_at=None if int(pttl) < 0 else self.clock() + int(pttl) / 1000,
        )

    async def _scan_batches(self, prefix: str) -> AsyncIterator[list[bytes]]:
        """Pages of full keys under ``prefix``, one per SCAN call (empty pages skipped)."""
        pattern = glob_escape(self._stem + prefix) + "*"
        cursor: int = 0
        while True:
            cursor, keys = await self._run(
                "SCAN", self._client.scan(cursor, match=pattern, count=SCAN_COUNT)
            )
            if keys:
                yield [_as_bytes(key) for key in keys]
            if cursor == 0:
                return

    async def _run(self, what: str, call: Awaitable[T]) -> T:
        try:
            return await self.breaker.call(what, call)
        except _DRIVER_ERRORS as exc:
            raise CacheBackendError(
                f"Redis cache at {self.address}: {what} failed: {type(exc).__name__}: {exc}"
            ) from exc
