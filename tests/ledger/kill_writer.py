"""The process the hard-kill test kills (not a test module).

``python -m tests.ledger.kill_writer PATH ROUND`` runs tasks forever (until killed, or
a safety cap) on eight coroutines: each task emits its events through one
:class:`LedgerWriter` into the SQLite ledger at PATH, awaits ``flush()``, and only then
prints ``task <id> done``: a task's result is reported only once its events are durable.
Events are a function of the task id (:func:`expected_events`), so the test can check
exactly what must be stored.
"""

from __future__ import annotations

import asyncio
import itertools
import sys

from helios.ledger.events import Event, PersonaLLMRun, TaskFinished, TaskStarted
from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.writer import LedgerWriter

CALLS_PER_TASK = 5
SAFETY_CAP = 200_000  # tasks; the test kills the process long before


def expected_events(task_id: str) -> list[Event]:
    number = int(task_id.rsplit("-", 1)[1])
    start = 1_700_000_000.0 + number
    events: list[Event] = [TaskStarted(task_id=task_id, goal=f"goal {task_id}", timestamp=start)]
    for call in range(CALLS_PER_TASK):
        events.append(
            PersonaLLMRun(
                task_id=task_id,
                timestamp=start + 0.01 * (call + 1),
                persona=f"persona-{call}",
                stage="thesis",
                provider="anthropic",
                model="claude-sonnet-4-5",
                streaming=True,
                ttft_s=0.4 + call,
                duration_s=2.0 + call,
                perceived_improvement=1 - (0.4 + call) / (2.0 + call),
                input_tokens=1000 + number,
                output_tokens=300 + call,
                cost_usd=0.001 * call,
            )
        )
    events.append(TaskFinished(task_id=task_id, timestamp=start + 1, success=True, duration_s=1))
    return events


async def main(path: str, round_name: str) -> None:
    store = SQLiteLedgerStore(path)
    writer = LedgerWriter(store, batch_size=200, flush_interval_s=0.002)
    numbers = itertools.count()

    async def worker() -> None:
        for number in numbers:
            if number >= SAFETY_CAP:
                return
            task_id = f"{round_name}-{number}"
            for event in expected_events(task_id):
                writer.emit(event)
                await asyncio.sleep(0)  # let the other tasks' events interleave
            await writer.flush()
            print(f"task {task_id} done", flush=True)

    await asyncio.gather(*(worker() for _ in range(8)))
    await writer.aclose()
    await store.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
