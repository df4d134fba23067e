"""Cache fixtures: a clock tests move by hand, and every backend behind one factory.

``make_backend`` is parametrized over the backend kinds, so a suite that takes it runs
against each. A new backend (Redis, ...) is one more entry in ``BACKEND_KINDS``; one that
needs a service skips there with a clear message when the service is absent.

Not every backend can honour every test: Redis expires keys on the server's clock, so a
test that drives expiry with the injected ``clock`` fixture does not apply to it, nor does
one that relies on ``max_entries`` eviction (Redis bounds memory with ``maxmemory``).
``KIND_CAPABILITIES`` says which kinds can; ``make_backend`` skips the rest with the reason.
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from helios.cache.backends.base import CacheBackend
from helios.cache.backends.memory import MemoryBackend
from helios.cache.backends.sqlite import SQLiteBackend
from helios.cache.exact import CachedReply
from helios.config.breaker import BreakerSettings
from helios.messages import Usage


class FakeClock:
    """Seconds since the epoch that only move when a test says so."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def one_chunk_reply(text: str) -> CachedReply:
    """A cached reply of one chunk: what the layers' tests store when the reply's fields do
    not matter."""
    return CachedReply(
        text=text,
        chunks=(text,),
        usage=Usage(input_tokens=3, output_tokens=2),
        model="m",
        provider="f",
        created_at=0.0,
    )


MakeBackend = Callable[..., CacheBackend]
"""``make_backend(max_entries=500)``: a fresh, empty backend on the test's ``clock``."""

BACKEND_KINDS = ["memory", "sqlite", "redis"]
REDIS_URL_ENV = "HELIOS_TEST_REDIS_URL"


@dataclass(frozen=True)
class Capabilities:
    fake_clock: bool = True
    """Expiry follows the injected clock (tests taking the ``clock`` fixture rely on it)."""
    max_entries: bool = True
    """``max_entries`` evicts least-recently-used entries."""


KIND_CAPABILITIES = {
    "memory": Capabilities(),
    "sqlite": Capabilities(),
    "redis": Capabilities(fake_clock=False, max_entries=False),
}


def redis_url() -> str:
    """The test server's URL from ``HELIOS_TEST_REDIS_URL``; skips the test when unset."""
    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        pytest.skip(f"set {REDIS_URL_ENV} (e.g. redis://127.0.0.1:6379/15) to test the Redis cache")
    return url


def redis_namespace() -> str:
    """A fresh key prefix, so that tests never see each other's keys."""
    return f"helios:test:{uuid.uuid4().hex}"


def build_backend(
    kind: str, tmp_path: Path, clock: FakeClock, max_entries: int, namespace: str = ""
) -> CacheBackend:
    if kind == "memory":
        return MemoryBackend(max_entries=max_entries, clock=clock)
    if kind == "sqlite":
        return SQLiteBackend(tmp_path / "cache.sqlite3", max_entries=max_entries, clock=clock)
    if kind == "redis":
        from helios.cache.backends.redis import RedisBackend

        # the contract is about what is stored, not how fast: a deadline that a burst of
        # fifty fresh connections on a loaded test machine cannot reach (test_store_faults
        # covers the deadline and the circuit breaker)
        return RedisBackend(
            redis_url(),
            prefix=namespace or redis_namespace(),
            clock=clock,
            breaker=BreakerSettings(deadline_s=2.0),
        )
    raise AssertionError(f"unknown backend kind {kind!r}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKEND_KINDS)
async def make_backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[MakeBackend]:
    kind: str = request.param
    capabilities = KIND_CAPABILITIES[kind]
    if not capabilities.fake_clock and "clock" in inspect.signature(request.function).parameters:
        pytest.skip(f"not applicable to {kind}: expiry follows the server's clock, not `clock`")
    namespace = redis_namespace() if kind == "redis" else ""
    made: list[CacheBackend] = []

    def make(*, max_entries: int = 500) -> CacheBackend:
        if not capabilities.max_entries and max_entries != 500:
            pytest.skip(f"not applicable to {kind}: size is bounded by maxmemory, not max_entries")
        backend = build_backend(kind, tmp_path, clock, max_entries, namespace)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()
    if made and kind == "redis":
        cleaner = build_backend(kind, tmp_path, clock, 500, namespace)
        await cleaner.delete_prefix("")
        await cleaner.aclose()
