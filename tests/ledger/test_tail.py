from helios.ledger.events import TaskFinished, TaskStarted
from helios.ledger.memory import MemoryLedgerStore
from helios.ledger.sink import MemorySink
from helios.ledger.tail import LedgerTail


async def test_feeds_each_new_event_once_even_at_equal_timestamps() -> None:
    store = MemoryLedgerStore()
    await store.append([TaskStarted(task_id="old", goal="g", timestamp=5.0)])
    sink = MemorySink()
    tail = LedgerTail(store, sink, since=10.0)
    await store.append(
        [
            TaskStarted(task_id="a", goal="g", timestamp=10.0),
            TaskStarted(task_id="b", goal="g", timestamp=12.0),
        ]
    )
    assert await tail.poll() == 2
    await store.append(
        [
            TaskFinished(task_id="b", success=True, duration_s=1, timestamp=12.0),  # same instant
            TaskFinished(task_id="a", success=True, duration_s=3, timestamp=13.0),
        ]
    )
    assert await tail.poll() == 2
    assert await tail.poll() == 0
    assert [e.task_id for e in sink.events] == ["a", "b", "b", "a"]
