"""The tail follows the ledger by insertion sequence, never by the events' clocks."""

from __future__ import annotations

import logging
import time

import pytest

from helios.ledger.events import Event, TaskFinished, TaskStarted
from helios.ledger.memory import MemoryLedgerStore
from helios.ledger.sink import MemorySink
from helios.ledger.tail import LedgerTail
from tests.ledger.conftest import EPOCH, Ledger


def started(task_id: str, at: float) -> TaskStarted:
    return TaskStarted(task_id=task_id, goal="g", timestamp=at)


async def test_starts_at_the_end_and_feeds_each_new_event_once(ledger: Ledger) -> None:
    store = ledger.open()
    await store.append([started("old", EPOCH)])
    sink = MemorySink()
    tail = LedgerTail(store, sink)
    await tail.start()
    await store.append([started("a", EPOCH + 10), started("b", EPOCH + 12)])
    assert await tail.poll() == 2
    await store.append(
        [
            TaskFinished(task_id="b", success=True, duration_s=1, timestamp=EPOCH + 12),
            TaskFinished(task_id="a", success=True, duration_s=3, timestamp=EPOCH + 13),
        ]
    )
    assert await tail.poll() == 2
    assert await tail.poll() == 0
    assert [e.task_id for e in sink.events] == ["a", "b", "b", "a"]


async def test_a_fast_clock_does_not_hide_other_writers_events(ledger: Ledger) -> None:
    """One writer stamps an event an hour ahead; the others' events keep being fed."""
    store = ledger.open()
    sink = MemorySink()
    tail = LedgerTail(store, sink)
    await tail.poll()  # the first poll only finds the end
    now = time.time()
    await store.append([started("fast-clock", now + 3600)])
    assert await tail.poll() == 1
    for n in range(3):
        await store.append([started(f"normal-{n}", now + n)])
        assert await tail.poll() == 1
    # and so do events stamped earlier than anything seen, in the order they were written
    await store.append([started("late-import", EPOCH)])
    assert await tail.poll() == 1
    assert [e.task_id for e in sink.events] == [
        "fast-clock",
        "normal-0",
        "normal-1",
        "normal-2",
        "late-import",
    ]


async def test_feeds_a_backlog_larger_than_one_batch() -> None:
    store = MemoryLedgerStore()
    sink = MemorySink()
    tail = LedgerTail(store, sink, after=0, batch_size=4)
    await store.append([started(f"t{n}", EPOCH + n) for n in range(10)])
    assert await tail.poll() == 10
    assert [e.task_id for e in sink.events] == [f"t{n}" for n in range(10)]
    assert tail.cursor == 10 and tail.fed == 10


async def test_a_sink_that_fails_on_one_event_gets_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Picky(MemorySink):
        def emit(self, event: Event) -> None:
            if event.task_id == "bad":
                raise ValueError("cannot take it")
            super().emit(event)

    store = MemoryLedgerStore()
    sink = Picky()
    tail = LedgerTail(store, sink, after=0)
    await store.append([started("bad", EPOCH), started("good", EPOCH)])
    with caplog.at_level(logging.ERROR, logger="helios.ledger.tail"):
        assert await tail.poll() == 2
    assert [e.task_id for e in sink.events] == ["good"]
    assert "the sink failed on event 1" in caplog.text
    assert await tail.poll() == 0
