"""The circuit breaker on its own: closed → open after N failures in a row → half-open after
the cool-down, where one probe decides; a deadline that returns at once; errors the store
answered with do not count."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from helios.breaker import CircuitBreaker, failure_log_level
from helios.errors import CacheBackendError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Store:
    """Counts the operations that reached it; fails, hangs or answers as told."""

    def __init__(self) -> None:
        self.reached = 0
        self.mode = "ok"

    async def op(self) -> str:
        self.reached += 1
        if self.mode == "down":
            raise ConnectionError("refused")
        if self.mode == "refuses-statement":
            raise ValueError("bad statement")
        if self.mode == "hang":
            await asyncio.sleep(3600)
        return "answer"


def breaker(clock: Clock, *, failures: int = 3) -> CircuitBreaker:
    return CircuitBreaker(
        "test store",
        error=lambda message, _retry: CacheBackendError(message),
        trips=lambda exc: isinstance(exc, ConnectionError),
        deadline_s=0.02,
        failures=failures,
        cooldown_s=5.0,
        clock=clock,
    )


async def test_opens_after_the_configured_failures_then_touches_nothing() -> None:
    clock, store = Clock(), Store()
    guard = breaker(clock)
    store.mode = "down"
    for _ in range(3):
        assert guard.state == "closed"
        with pytest.raises(ConnectionError):
            await guard.call("get", store.op())
    assert guard.state == "open" and store.reached == 3
    for _ in range(10):
        with pytest.raises(CacheBackendError, match="circuit open after 3 failures"):
            await guard.call("get", store.op())
    assert store.reached == 3 and guard.rejected == 10
    assert guard.retry_after_s() == 5.0
    assert failure_log_level(guard) < failure_log_level(None)


async def test_half_open_lets_one_probe_through_and_its_outcome_decides() -> None:
    clock, store = Clock(), Store()
    guard = breaker(clock, failures=1)
    store.mode = "down"
    with pytest.raises(ConnectionError):
        await guard.call("get", store.op())
    clock.now += 5.0
    assert guard.state == "half-open"
    with pytest.raises(ConnectionError):  # the probe fails: open for another cool-down
        await guard.call("get", store.op())
    assert guard.state == "open" and guard.opened == 2 and store.reached == 2
    clock.now += 5.0
    store.mode = "hang"
    probe = asyncio.ensure_future(guard.call("get", store.op()))
    await asyncio.sleep(0)
    with pytest.raises(CacheBackendError, match="circuit open"):  # one probe at a time
        await guard.call("get", store.op())
    with pytest.raises(CacheBackendError, match="timed out"):
        await probe
    assert guard.state == "open" and store.reached == 3
    clock.now += 5.0
    store.mode = "ok"
    assert await guard.call("get", store.op()) == "answer"
    assert guard.state == "closed" and guard.snapshot()["consecutive_failures"] == 0


async def test_a_deadline_returns_at_once_and_counts_as_a_failure() -> None:
    clock, store = Clock(), Store()
    guard = breaker(clock)
    store.mode = "hang"
    async with asyncio.timeout(5):  # generous: the deadline is 20 ms, the store hangs an hour
        for _ in range(3):
            with pytest.raises(CacheBackendError, match="get timed out after 20 ms"):
                await guard.call("get", store.op())
    assert guard.state == "open" and guard.timeouts == 3
    await guard.aclose()  # the abandoned operations were cancelled and have unwound
    assert not guard._abandoned


async def test_an_error_the_store_answered_with_does_not_count() -> None:
    clock, store = Clock(), Store()
    guard = breaker(clock)
    for _ in range(2):
        store.mode = "down"
        with pytest.raises(ConnectionError):
            await guard.call("get", store.op())
        store.mode = "refuses-statement"
        with pytest.raises(ValueError, match="bad statement"):
            await guard.call("get", store.op())
    assert guard.state == "closed"


async def test_a_refused_coroutine_is_closed_not_left_unawaited() -> None:
    clock, store = Clock(), Store()
    guard = breaker(clock, failures=1)
    store.mode = "down"
    with pytest.raises(ConnectionError):
        await guard.call("get", store.op())
    refused = store.op()
    with pytest.raises(CacheBackendError):
        await guard.call("get", refused)
    assert inspect.getcoroutinestate(refused) == inspect.CORO_CLOSED
    assert store.reached == 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="failures"):
        CircuitBreaker("s", error=CacheBackendError, trips=bool, failures=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="deadline_s"):
        CircuitBreaker("s", error=CacheBackendError, trips=bool, deadline_s=0)  # type: ignore[arg-type]
