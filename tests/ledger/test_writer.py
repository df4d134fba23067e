"""LedgerWriter: batching, flush semantics, retries after failures, clean shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from helios.errors import LedgerError
from helios.ledger.events import Event, TaskStarted
from helios.ledger.memory import MemoryLedgerStore
from helios.ledger.sink import EventSink
from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.store import EventQuery
from helios.ledger.writer import LedgerWriter
from tests.ledger.conftest import task_events


class RecordingStore(MemoryLedgerStore):
    """A memory store that records each append's size, can fail on demand and can hold
    appends until a test opens ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []
        self.failures: list[BaseException] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def append(self, events: Sequence[Event]) -> None:
        self.calls.append(len(events))
        await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        await super().append(events)


def events(count: int, prefix: str = "t") -> list[Event]:
    return [TaskStarted(task_id=f"{prefix}{n}", goal=str(n)) for n in range(count)]


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_is_an_event_sink() -> None:
    writer: EventSink = LedgerWriter(MemoryLedgerStore())
    assert callable(writer.emit)


async def test_flush_writes_full_batches() -> None:
    store = RecordingStore()
    writer = LedgerWriter(store, batch_size=500, flush_interval_s=60)
    emitted = events(1200)
    for event in emitted:
        writer.emit(event)
    assert writer.pending == 1200
    await writer.flush()
    assert store.calls == [500, 500, 200]
    assert await store.query() == emitted
    assert writer.pending == 0 and writer.lag_s == 0.0
    await writer.aclose()


async def test_a_quiet_writer_writes_after_the_flush_interval() -> None:
    store = RecordingStore()
    writer = LedgerWriter(store, flush_interval_s=0.05)
    for event in events(3):
        writer.emit(event)
    await asyncio.sleep(0.01)
    assert store.calls == []  # still gathering a batch
    await eventually(lambda: store.calls == [3])
    await writer.aclose()


async def test_a_full_batch_does_not_wait_for_the_interval() -> None:
    store = RecordingStore()
    writer = LedgerWriter(store, batch_size=10, flush_interval_s=60)
    for event in events(15):
        writer.emit(event)
    await eventually(lambda: store.calls == [10])
    await asyncio.sleep(0.05)
    assert store.calls == [10] and writer.pending == 5
    await writer.aclose()
    assert store.calls == [10, 5]


async def test_emit_never_waits_for_the_store() -> None:
    store = RecordingStore()
    store.gate.clear()
    writer = LedgerWriter(store, batch_size=5, flush_interval_s=0.01)
    writer.emit(events(1)[0])
    await eventually(lambda: store.calls == [1])  # an append is now stuck in the store
    started = time.monotonic()
    for event in events(1000, "late"):
        writer.emit(event)
    assert time.monotonic() - started < 0.5
    assert writer.pending == 1001
    await asyncio.sleep(0.05)
    assert writer.lag_s >= 0.05
    store.gate.set()
    await writer.flush()
    assert await store.count() == 1001 and writer.pending == 0
    await writer.aclose()


async def test_flush_waits_only_for_what_was_emitted_before_it() -> None:
    store = RecordingStore()
    writer = LedgerWriter(store, flush_interval_s=60)
    await writer.flush()  # nothing emitted: returns at once
    assert store.calls == []
    writer.emit(events(1)[0])
    store.gate.clear()
    flushing = asyncio.create_task(writer.flush())
    await eventually(lambda: store.calls == [1])
    writer.emit(events(1, "after")[0])
    await asyncio.sleep(0.02)
    assert not flushing.done()  # its event is not durable yet
    store.gate.set()
    await asyncio.wait_for(flushing, 5)
    assert (await store.query())[0].task_id == "t0"
    await writer.aclose()
    assert await store.count() == 2


async def test_a_failed_append_is_reported_by_flush_and_retried() -> None:
    store = RecordingStore()
    store.failures = [LedgerError("disk full"), LedgerError("disk full")]
    writer = LedgerWriter(store, flush_interval_s=60, retry_initial_s=60)
    emitted = events(5)
    for event in emitted:
        writer.emit(event)
    with pytest.raises(LedgerError, match="disk full"):
        await writer.flush()
    assert writer.pending == 5 and isinstance(writer.last_error, LedgerError)
    with pytest.raises(LedgerError, match="disk full"):
        await writer.flush()  # a flush retries at once, despite the long backoff
    await writer.flush()
    assert store.calls == [5, 5, 5]
    assert await store.query() == emitted  # once each, in order
    assert writer.pending == 0 and writer.last_error is None
    await writer.aclose()


async def test_failures_are_retried_in_the_background() -> None:
    store = RecordingStore()
    store.failures = [RuntimeError("connection reset"), LedgerError("still down")]
    writer = LedgerWriter(store, flush_interval_s=0.01, retry_initial_s=0.01)
    emitted = events(7)
    for event in emitted:
        writer.emit(event)
    await eventually(lambda: writer.pending == 0)
    assert store.calls == [7, 7, 7]
    assert await store.query() == emitted
    await writer.aclose()


async def test_other_store_errors_become_ledger_errors() -> None:
    store = RecordingStore()
    store.failures = [RuntimeError("connection reset")]
    writer = LedgerWriter(store, flush_interval_s=60, retry_initial_s=60)
    writer.emit(events(1)[0])
    with pytest.raises(LedgerError, match="connection reset") as caught:
        await writer.flush()
    assert isinstance(caught.value.__cause__, RuntimeError)
    await writer.aclose()
    assert await store.count() == 1


async def test_aclose_writes_everything_then_refuses_events() -> None:
    store = RecordingStore()
    writer = LedgerWriter(store, batch_size=100, flush_interval_s=60)
    emitted = events(1234)
    for event in emitted:
        writer.emit(event)
    await writer.aclose()
    assert await store.query() == emitted
    assert max(store.calls) == 100
    with pytest.raises(LedgerError, match="closed"):
        writer.emit(emitted[0])
    await writer.aclose()  # closing twice is harmless


async def test_aclose_keeps_events_when_the_store_fails() -> None:
    store = RecordingStore()
    store.failures = [LedgerError("read-only file system")]
    writer = LedgerWriter(store, flush_interval_s=60, retry_initial_s=60)
    for event in events(4):
        writer.emit(event)
    with pytest.raises(LedgerError, match="4 events unwritten: read-only file system"):
        await writer.aclose()
    assert writer.pending == 4
    writer.emit(events(1, "more")[0])  # still open
    await writer.aclose()
    assert await store.count() == 5


async def test_an_unused_writer_closes_at_once() -> None:
    store = RecordingStore()
    async with LedgerWriter(store):
        pass
    assert store.calls == []


async def test_many_tasks_through_sqlite(tmp_path: Path) -> None:
    store = SQLiteLedgerStore(tmp_path / "ledger.sqlite3")
    writer = LedgerWriter(store, batch_size=50, flush_interval_s=0.005)

    async def task(number: int) -> None:
        for event in task_events(f"task-{number}"):
            writer.emit(event)
            await asyncio.sleep(0)
        await writer.flush()
        # flushed: durable and visible to another connection
        other = SQLiteLedgerStore(tmp_path / "ledger.sqlite3")
        try:
            stored = await other.query(EventQuery(task_ids=[f"task-{number}"]))
            assert len(stored) == len(task_events("x"))
        finally:
            await other.aclose()

    await asyncio.gather(*(task(number) for number in range(40)))
    await writer.aclose()
    assert await store.count() == 40 * len(task_events("x"))
    await store.aclose()


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"timestamp": time.time() * 1000}, "timestamp"),
        ({"timestamp": float("nan")}, "timestamp"),
        ({"duration_s": float("inf")}, "duration_s"),
        ({"cost_usd": -1.0}, "cost_usd"),
    ],
)
async def test_emit_refuses_an_implausible_event_and_keeps_writing_the_rest(
    update: dict[str, float], field: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RecordingStore()
    writer = LedgerWriter(store, flush_interval_s=60)
    good = task_events("good")
    bad = good[-1].model_copy(update=update)  # a task_finished
    writer.emit(good[0])
    with caplog.at_level(logging.ERROR, logger="helios.ledger.writer"):
        writer.emit(bad)  # never raises: a bad record must not fail the call it records
    assert f"refused task_finished event of task 'good': {field}: " in caplog.text
    assert (writer.refused, writer.pending) == (1, 1)
    for event in good[1:]:
        writer.emit(event)
    await writer.flush()
    assert await store.query() == good  # the queue never held the bad event
    await writer.aclose()
