"""Cache fixtures: a clock tests move by hand, and every backend behind one factory.

``make_backend`` is parametrized over the backend kinds, so a suite that takes it runs
against each. A new backend (Redis, ...) is one more entry in ``BACKEND_KINDS``; one that
needs a service skips there with a clear message when the service is absent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from helios.cache.backends.base import CacheBackend
from helios.cache.backends.memory import MemoryBackend
from helios.cache.backends.sqlite import SQLiteBackend


class FakeClock:
    """Seconds since the epoch that only move when a test says so."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeBackend = Callable[..., CacheBackend]
"""``make_backend(max_entries=500)``: a fresh, empty backend on the test's ``clock``."""

BACKEND_KINDS = ["memory", "sqlite"]


def build_backend(kind: str, tmp_path: Path, clock: FakeClock, max_entries: int) -> CacheBackend:
    if kind == "memory":
        return MemoryBackend(max_entries=max_entries, clock=clock)
    if kind == "sqlite":
        return SQLiteBackend(tmp_path / "cache.sqlite3", max_entries=max_entries, clock=clock)
    raise AssertionError(f"unknown backend kind {kind!r}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKEND_KINDS)
async def make_backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[MakeBackend]:
    made: list[CacheBackend] = []

    def make(*, max_entries: int = 500) -> CacheBackend:
        backend = build_backend(request.param, tmp_path, clock, max_entries)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()
