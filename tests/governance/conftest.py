"""Governor fixtures: a clock tests move by hand and every state backend behind one factory.

Redis runs when ``HELIOS_TEST_REDIS_URL`` is set (``.ci/run`` sets it); each test gets its
own random key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from helios.catalog import Catalog, ModelEntry, Prices
from helios.governance.state.base import GovernorState
from helios.governance.state.memory import MemoryState
from helios.governance.state.sqlite import SQLiteState

STATE_KINDS = ["memory", "sqlite", "redis"]
REDIS_URL_VARIABLE = "HELIOS_TEST_REDIS_URL"


class FakeClock:
    """Seconds since the epoch that only move when a test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeState = Callable[[], GovernorState]


def redis_url() -> str:
    url = os.environ.get(REDIS_URL_VARIABLE)
    if not url:
        pytest.skip(f"set {REDIS_URL_VARIABLE} (e.g. redis://127.0.0.1:6379/15) to test Redis")
    return url


async def delete_prefix(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=STATE_KINDS)
async def make_state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeState]:
    """``make_state()``: a state on the test's clock; every call shares the same store."""
    kind: str = request.param
    made: list[GovernorState] = []
    prefix = f"helios-test:{uuid.uuid4().hex}"
    url = redis_url() if kind == "redis" else ""

    def make() -> GovernorState:
        state: GovernorState
        if kind == "memory":
            state = made[0] if made else MemoryState()
        elif kind == "sqlite":
            state = SQLiteState(tmp_path / "governor.sqlite3")
        else:
            from helios.governance.state.redis import RedisState

            state = RedisState(url, prefix=prefix, server_time=False)
        made.append(state)
        return state

    yield make
    for state in made:
        await state.close()
    if kind == "redis":
        await delete_prefix(url, prefix)


def _entry(model_id: str, provider: str, tier: str, price: float) -> ModelEntry:
    prices = Prices(
        input=price, output=price * 5, cache_write_5m=price, cache_write_1h=price, cache_read=0
    )
    return ModelEntry.model_validate(
        {
            "id": model_id,
            "provider": provider,
            "tier": tier,
            "context_window": 100_000,
            "prices": prices,
        }
    )


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        [
            _entry("big", "anthropic", "strong", 3.0),
            _entry("small", "anthropic", "fast", 1.0),
            _entry("tiny", "llamacpp", "local", 0.0),
        ]
    )
