"""A SIGKILLed process loses no event of a task it reported done, and leaves no torn batch.

The worker (``kill_writer.py``) reports a task only after ``flush()``; the test kills it at
an arbitrary moment mid-run (batches are being written all the time), three rounds on one
file so that later rounds also write after a crash, and then reads the ledger back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from helios.ledger.events import Event
from helios.ledger.sqlite import SQLiteLedgerStore
from tests.ledger.kill_writer import expected_events

REPO = Path(__file__).resolve().parents[2]


def run_and_kill(path: Path, round_name: str, kill_after: int) -> set[str]:
    """Start the worker, SIGKILL it once ``kill_after`` tasks are done; the tasks it
    reported done (every line it printed before dying)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.ledger.kill_writer", str(path), round_name],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    done: set[str] = set()
    try:
        for line in process.stdout:
            done.add(line.split()[1])
            if len(done) >= kill_after:
                process.kill()  # SIGKILL: no cleanup, no final flush
                break
        remaining, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -9, errors
    done.update(line.split()[1] for line in remaining.splitlines())
    return done


def read_ledger(path: Path) -> list[Event]:
    async def read() -> list[Event]:
        store = SQLiteLedgerStore(path)
        try:
            return await store.query()  # raises LedgerError on any unreadable row
        finally:
            await store.aclose()

    return asyncio.run(read())


def test_a_killed_writer_loses_nothing_it_reported(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    reported: set[str] = set()
    for round_name, kill_after in (("r1", 150), ("r2", 40), ("r3", 300)):
        reported |= run_and_kill(path, round_name, kill_after)
        stored: dict[str, list[Event]] = defaultdict(list)
        for event in read_ledger(path):
            stored[event.task_id].append(event)
        for task_id in reported:
            assert stored[task_id] == expected_events(task_id), task_id
        for task_id, events in stored.items():
            # unreported tasks: whatever was committed is a prefix, never a torn event
            assert events == expected_events(task_id)[: len(events)], task_id
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        connection.close()
    assert len(reported) >= 490
