"""Events grouped into tasks: the unit every ledger analysis counts.

A task is a ``task_id`` with a ``task_started`` or ``task_finished`` event. Its metrics are
latencies in seconds: ``evidence`` (``evidence_gathered``), one per persona-call stage
(``thesis``, ``antithesis``, ``synthesis``, ``judge``; calls of one stage are summed, as
when a second pass or a judge follow-up runs it again) and ``total`` (``task_finished``,
successful tasks only: a failed task stops early and would flatter the numbers).

A task with a start and no end is *running* until ``abandoned_after_s`` (the setting
``ledger.abandoned_after_s``) have passed since its start, then *abandoned*: its process
died (SIGKILL, OOM, a lost host) before it could record an end. Abandoned tasks count as
ended and not successful, so crashes lower the success rate.

A task that ended with an ``error`` of a cancellation kind (:data:`CANCELLED_KINDS`: Ctrl-C,
a cancelled run) is *cancelled*: neither a success nor a failure, and left out of the
success rate. A task whose answer went through the quality gate is *accepted* when a pass
passed it, *rejected* otherwise; a task with no gate (a DAG run, a task that failed before
its gate) is neither, and left out of the acceptance rate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from helios.ledger.events import (
    CANCELLED_KINDS,
    ErrorEvent,
    Event,
    EvidenceGathered,
    FlagValue,
    GateVerdict,
    PersonaLLMRun,
    TaskFinished,
    TaskStarted,
)

STAGES = ("evidence", "thesis", "antithesis", "synthesis", "judge")
TOTAL = "total"
_FALSE_TEXT = frozenset({"false", "0", "no", "off", ""})


@dataclass
class TaskRecord:
    task_id: str
    events: list[Event] = field(default_factory=list)
    started: TaskStarted | None = None
    finished: TaskFinished | None = None
    calls: list[PersonaLLMRun] = field(default_factory=list)

    @property
    def start_time(self) -> float:
        if self.started is not None:
            return self.started.timestamp
        return min(event.timestamp for event in self.events)

    def abandoned(self, *, now: float, after_s: float) -> bool:
        """Started, never ended, and the start is more than ``after_s`` ago."""
        return (
            self.finished is None
            and self.started is not None
            and now - self.started.timestamp > after_s
        )

    @property
    def cancelled(self) -> bool:
        """Ended unsuccessfully because it was cancelled (Ctrl-C, a cancelled run)."""
        return (
            self.finished is not None
            and not self.finished.success
            and any(isinstance(e, ErrorEvent) and e.kind in CANCELLED_KINDS for e in self.events)
        )

    @property
    def gate_passed(self) -> bool | None:
        """Whether the quality gate passed the answer; ``None`` when no gate judged it."""
        finished = self.finished
        if finished is not None and finished.accepted_pass is not None:
            return True
        verdicts = [event for event in self.events if isinstance(event, GateVerdict)]
        if any(verdict.passed for verdict in verdicts):
            return True
        if verdicts or (finished is not None and finished.passes > 0):
            return False
        return None

    @property
    def flags(self) -> dict[str, FlagValue]:
        return dict(self.started.flags) if self.started is not None else {}

    @property
    def ran_async_thesis(self) -> bool:
        """Whether the task ran the async thesis; a task that did not record the flag
        counts as async (the default)."""
        return truthy(self.flags.get("async_thesis", True))

    def metrics(self) -> dict[str, float]:
        """Latency per stage and ``total`` (when the task succeeded), in seconds."""
        values: dict[str, float] = defaultdict(float)
        for event in self.events:
            if isinstance(event, EvidenceGathered):
                values["evidence"] += event.duration_s
            elif isinstance(event, PersonaLLMRun):
                values[event.stage] += event.duration_s
        if self.finished is not None and self.finished.success:
            values[TOTAL] = self.finished.duration_s
        return dict(values)


@dataclass(frozen=True, slots=True)
class Outcomes:
    """How a set of tasks ended: the counts behind a success and an acceptance rate."""

    tasks: int
    succeeded: int
    failed: int
    cancelled: int
    abandoned: int
    running: int
    judged: int
    """Ended tasks (cancelled ones aside) whose answer went through the quality gate."""
    accepted: int
    """Judged tasks whose answer passed the gate."""

    @property
    def rated(self) -> int:
        """The tasks a success rate is over: ended, cancelled ones aside."""
        return self.succeeded + self.failed + self.abandoned

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.rated if self.rated else None

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.judged if self.judged else None

    def to_dict(self) -> dict[str, int | float | None]:
        return {
            "tasks": self.tasks,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "abandoned": self.abandoned,
            "running": self.running,
            "success_rate": self.success_rate,
            "judged": self.judged,
            "accepted": self.accepted,
            "acceptance_rate": self.acceptance_rate,
        }


def outcomes(tasks: Iterable[TaskRecord], *, now: float, abandoned_after_s: float) -> Outcomes:
    """Count how ``tasks`` ended; a task without an end is abandoned once
    ``abandoned_after_s`` have passed since its start at ``now``."""
    counts: dict[str, int] = defaultdict(int)
    for task in tasks:
        counts["tasks"] += 1
        finished = task.finished
        if finished is None:
            gone = task.abandoned(now=now, after_s=abandoned_after_s)
            counts["abandoned" if gone else "running"] += 1
            continue
        if task.cancelled:
            counts["cancelled"] += 1
            continue
        counts["succeeded" if finished.success else "failed"] += 1
        gate = task.gate_passed
        if gate is not None:
            counts["judged"] += 1
            counts["accepted"] += gate
    return Outcomes(
        tasks=counts["tasks"],
        succeeded=counts["succeeded"],
        failed=counts["failed"],
        cancelled=counts["cancelled"],
        abandoned=counts["abandoned"],
        running=counts["running"],
        judged=counts["judged"],
        accepted=counts["accepted"],
    )


def group_tasks(events: Iterable[Event]) -> list[TaskRecord]:
    """Events grouped by task, tasks ordered by their start; events keep their order."""
    records: dict[str, TaskRecord] = {}
    for event in events:
        record = records.get(event.task_id)
        if record is None:
            record = records[event.task_id] = TaskRecord(event.task_id)
        record.events.append(event)
        if isinstance(event, TaskStarted):
            record.started = event
        elif isinstance(event, TaskFinished):
            record.finished = event
        elif isinstance(event, PersonaLLMRun):
            record.calls.append(event)
    tasks = [r for r in records.values() if r.started is not None or r.finished is not None]
    return sorted(tasks, key=lambda record: record.start_time)


def metric_names(tasks: Sequence[TaskRecord]) -> list[str]:
    """The stages these tasks ran, known stages first in pipeline order, then ``total``."""
    seen = {name for task in tasks for name in task.metrics()} - {TOTAL}
    extra = sorted(seen - set(STAGES))
    return [*(stage for stage in STAGES if stage in seen), *extra, TOTAL]


def finite(value: float | None) -> float | None:
    """``value``, or ``None`` for NaN and infinities (a stored event may hold them)."""
    return value if value is not None and math.isfinite(value) else None


def finite_sum(values: Iterable[float | None]) -> float:
    return sum(v for v in (finite(value) for value in values) if v is not None)


def truthy(value: FlagValue) -> bool:
    """A flag value as a boolean; imported ledgers may hold ``"false"`` as text."""
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_TEXT
    return bool(value)


def label(value: FlagValue) -> str:
    """How an arm is named: booleans as ``true``/``false``, JSON style."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
