"""How each task ended, from the events that follow it: the status the metrics count.

A task ends in one status:

- ``succeeded``: ``task_finished`` with ``success`` true;
- ``cancelled``: ``task_finished`` with ``success`` false after an ``error`` of kind
  ``interrupted`` (Ctrl-C, a cancelled asyncio task): the user stopped it, nothing failed;
- ``invalid_input``: ``success`` false and its only errors were of kind ``input_error`` (a
  prompt too long for the model): the caller's to fix, no failure of Helios;
- ``failed``: any other ``task_finished`` with ``success`` false;
- ``abandoned``: started more than ``abandoned_after_s`` ago and never ended (its process
  was killed). An end that arrives after that is ignored, so no task counts twice.

A task is *accepted* when it succeeded with an answer the quality gate passed (a
``gate_verdict`` with ``passed`` true, or ``task_finished.accepted_pass`` set).

What is remembered of tasks that never end is bounded (:data:`REMEMBERED`), so they cannot
grow the process without limit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from helios.call_events import RETRY_KIND
from helios.ledger.events import (
    CANCELLED_KINDS,
    INPUT_ERROR,
    ErrorEvent,
    GateVerdict,
    TaskFinished,
    TaskStarted,
)

TaskStatus = Literal["succeeded", "failed", "cancelled", "invalid_input", "abandoned"]
TASK_STATUSES: tuple[TaskStatus, ...] = (
    "succeeded",
    "failed",
    "cancelled",
    "invalid_input",
    "abandoned",
)
REMEMBERED = 10_000
"""Task ids remembered as abandoned, and unfinished tasks whose errors and verdicts are kept
(open tasks are all kept: the sweep abandons them in time)."""


@dataclass(slots=True)
class _Marks:
    """What the events of a task that has not ended yet said about it."""

    interrupted: bool = False
    input_error: bool = False
    other_error: bool = False
    gate_passed: bool = False


@dataclass(frozen=True, slots=True)
class Ending:
    status: TaskStatus
    accepted: bool


class TaskOutcomes:
    """Tracks open tasks and turns each end into an :class:`Ending`. Thread-safe: events
    arrive on the event loop while a scrape sweeps from a worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[str, float] = OrderedDict()  # task id -> start time
        self._abandoned: OrderedDict[str, None] = OrderedDict()
        self._marks: OrderedDict[str, _Marks] = OrderedDict()

    @property
    def running(self) -> int:
        return len(self._open)

    def is_open(self, task_id: str) -> bool:
        return task_id in self._open

    def started(self, event: TaskStarted) -> None:
        with self._lock:
            self._open[event.task_id] = event.timestamp

    def error(self, event: ErrorEvent) -> None:
        if event.kind == RETRY_KIND:
            return  # a retried attempt: the task went on
        marks = self._marks_of(event.task_id)
        if event.kind in CANCELLED_KINDS:
            marks.interrupted = True
        elif event.kind == INPUT_ERROR:
            marks.input_error = True
        else:
            marks.other_error = True

    def verdict(self, event: GateVerdict) -> None:
        if event.passed:
            self._marks_of(event.task_id).gate_passed = True

    def finished(self, event: TaskFinished) -> Ending | None:
        """How the task ended; ``None`` when it was already counted as abandoned."""
        with self._lock:
            self._open.pop(event.task_id, None)
            marks = self._marks.pop(event.task_id, None) or _Marks()
            if event.task_id in self._abandoned:
                del self._abandoned[event.task_id]
                return None
        if event.success:
            accepted = marks.gate_passed or event.accepted_pass is not None
            return Ending("succeeded", accepted)
        if marks.interrupted:
            return Ending("cancelled", False)
        if marks.input_error and not marks.other_error:
            return Ending("invalid_input", False)
        return Ending("failed", False)

    def sweep(self, deadline: float) -> int:
        """Abandon the open tasks started before ``deadline``; how many there were."""
        with self._lock:
            gone = [task for task, started in self._open.items() if started < deadline]
            for task in gone:
                del self._open[task]
                self._marks.pop(task, None)
                self._abandoned[task] = None
            _bound(self._abandoned)
        return len(gone)

    def _marks_of(self, task_id: str) -> _Marks:
        with self._lock:
            marks = self._marks.get(task_id)
            if marks is None:
                marks = self._marks[task_id] = _Marks()
                _bound(self._marks)
            return marks


def _bound(table: OrderedDict[str, Any]) -> None:
    while len(table) > REMEMBERED:
        table.popitem(last=False)
