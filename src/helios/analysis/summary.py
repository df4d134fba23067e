"""Ledger analysis: pure functions over events, grouped into tasks by ``task_id``.

- :func:`summarize`: outcomes (succeeded, failed, cancelled, abandoned, running), the
  success rate and the quality gate's acceptance rate, latency per stage, TTFT, cache hit
  rates, tokens, cost, fallback, second-pass and error counts.
- :func:`compare`: tasks split into arms (by a flag, a persona-call field or a task field)
  and each arm tested against a baseline (:mod:`helios.analysis.comparison`).
- :func:`last_task`: the most recent task's latency breakdown.

Events with implausible values (:mod:`helios.ledger.validation`: a timestamp in epoch
milliseconds, a NaN duration) are left out and counted (``Summary.skipped_events``, a note
of the ``Comparison``).

A *task* is a ``task_id`` with a ``task_started`` or ``task_finished`` event; other events
(``flag_changed``, stray governor decisions) are not tasks. Stage latency sums the calls of
one stage within a task (a second pass, a judge asked twice). The ``total`` latency only
counts successful tasks: a failed task stops early and would flatter the numbers.

The success rate is over the tasks that ended (finished or abandoned), cancelled ones aside;
the acceptance rate over those of them the quality gate judged (:mod:`helios.analysis.tasks`
says who counts). Cancellations are counted apart, never among the errors.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from helios.analysis.comparison import Comparison, compare
from helios.analysis.stats import Distribution, describe
from helios.analysis.tasks import (
    STAGES,
    TaskRecord,
    finite,
    finite_sum,
    group_tasks,
    metric_names,
    outcomes,
)
from helios.config.ledger import DEFAULT_ABANDONED_AFTER_S
from helios.ledger.events import (
    CANCELLED_KINDS,
    AsyncFallback,
    CacheLookup,
    ErrorEvent,
    Event,
    EvidenceGathered,
    GateVerdict,
    PersonaLLMRun,
    SecondPass,
    TaskFinished,
)
from helios.ledger.validation import screen

__all__ = [
    "CacheRate",
    "Comparison",
    "StageTiming",
    "Summary",
    "TaskBreakdown",
    "compare",
    "last_task",
    "summarize",
]


@dataclass(frozen=True, slots=True)
class CacheRate:
    lookups: int
    hits: int

    @property
    def rate(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None

    def to_dict(self) -> dict[str, Any]:
        return {"lookups": self.lookups, "hits": self.hits, "hit_rate": self.rate}


@dataclass(frozen=True, slots=True)
class Summary:
    tasks: int
    finished: int
    succeeded: int
    first_timestamp: float | None
    last_timestamp: float | None
    latency: dict[str, Distribution]
    """Per stage (evidence, thesis, ...) and ``total``, in seconds."""
    ttft: dict[str, Distribution]
    """Time to first token per persona, in seconds."""
    cache: dict[str, CacheRate]
    """Per cache layer, from ``cache_lookup`` events."""
    input_tokens: int
    output_tokens: int
    cost_usd: float
    saved_usd: float
    unpriced_calls: int
    """Persona calls without a known cost (local models, unknown prices)."""
    async_tasks: int
    """Tasks that ran the async thesis (``flags.async_thesis`` true or not recorded)."""
    async_fallbacks: int
    second_pass_tasks: int
    errors: dict[str, int] = field(default_factory=dict)
    abandoned: int = 0
    """Tasks started more than ``abandoned_after_s`` ago that never ended (crashed)."""
    running: int = 0
    """Tasks started more recently that have not ended yet."""
    abandoned_after_s: float = DEFAULT_ABANDONED_AFTER_S
    skipped_events: int = 0
    """Events left out for implausible values (:mod:`helios.ledger.validation`)."""
    cancelled: int = 0
    """Finished tasks that were cancelled (Ctrl-C): neither successes nor failures."""
    judged: int = 0
    """Ended tasks (cancelled ones aside) whose answer went through the quality gate."""
    accepted: int = 0
    """Judged tasks whose answer passed the gate."""
    calls: int = 0
    """Persona calls: with ``unpriced_calls`` of them, whether the cost is known."""

    @property
    def cost_known(self) -> bool:
        """Whether any call had a price: with none, the cost is unknown, not 0."""
        return self.unpriced_calls < self.calls or not self.calls

    @property
    def ended(self) -> int:
        """Finished or abandoned, cancelled ones included."""
        return self.finished + self.abandoned

    @property
    def rated(self) -> int:
        """The tasks the success rate is over: ended, cancelled ones aside."""
        return self.ended - self.cancelled

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.rated if self.rated else None

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.judged if self.judged else None

    @property
    def async_fallback_rate(self) -> float | None:
        return self.async_fallbacks / self.async_tasks if self.async_tasks else None

    @property
    def second_pass_rate(self) -> float | None:
        return self.second_pass_tasks / self.tasks if self.tasks else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "finished": self.finished,
            "succeeded": self.succeeded,
            "cancelled": self.cancelled,
            "abandoned": self.abandoned,
            "running": self.running,
            "abandoned_after_s": self.abandoned_after_s,
            "skipped_events": self.skipped_events,
            "success_rate": self.success_rate,
            "judged": self.judged,
            "accepted": self.accepted,
            "acceptance_rate": self.acceptance_rate,
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
            "latency_s": {name: d.to_dict() for name, d in self.latency.items()},
            "ttft_s": {name: d.to_dict() for name, d in self.ttft.items()},
            "cache": {layer: rate.to_dict() for layer, rate in self.cache.items()},
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "cost_usd": self.cost_usd if self.cost_known else None,
            "saved_usd": self.saved_usd if self.cost_known else None,
            "calls": self.calls,
            "unpriced_calls": self.unpriced_calls,
            "async_tasks": self.async_tasks,
            "async_fallbacks": self.async_fallbacks,
            "async_fallback_rate": self.async_fallback_rate,
            "second_pass_tasks": self.second_pass_tasks,
            "second_pass_rate": self.second_pass_rate,
            "errors": dict(self.errors),
        }


def summarize(
    events: Iterable[Event],
    *,
    now: float | None = None,
    abandoned_after_s: float = DEFAULT_ABANDONED_AFTER_S,
) -> Summary:
    """The summary of ``events``' tasks; a task without an end is abandoned once
    ``abandoned_after_s`` have passed since its start at ``now`` (default: the clock)."""
    moment = time.time() if now is None else now
    screened = screen(events, now=moment)
    tasks = group_tasks(screened.events)
    ended = outcomes(tasks, now=moment, abandoned_after_s=abandoned_after_s)
    calls = [call for task in tasks for call in task.calls]
    latency: dict[str, list[float]] = {name: [] for name in metric_names(tasks)}
    for task in tasks:
        for name, seconds in task.metrics().items():
            latency[name].append(seconds)
    ttft: dict[str, list[float]] = defaultdict(list)
    for call in calls:
        ttft[call.persona].append(call.ttft_s)
    lookups: dict[str, list[bool]] = defaultdict(list)
    errors: Counter[str] = Counter()
    fallback_tasks: set[str] = set()
    for task in tasks:
        for event in task.events:
            if isinstance(event, CacheLookup):
                lookups[event.layer].append(event.hit)
            elif isinstance(event, ErrorEvent) and event.kind not in CANCELLED_KINDS:
                errors[event.kind] += 1
            elif isinstance(event, AsyncFallback):
                fallback_tasks.add(task.task_id)
    finished = [task.finished for task in tasks if task.finished is not None]
    stamps = [e.timestamp for task in tasks for e in task.events if finite(e.timestamp) is not None]
    return Summary(
        tasks=len(tasks),
        finished=len(finished),
        succeeded=sum(1 for event in finished if event.success),
        first_timestamp=min(stamps, default=None),
        last_timestamp=max(stamps, default=None),
        latency={name: describe(values) for name, values in latency.items()},
        ttft={persona: describe(ttft[persona]) for persona in sorted(ttft, key=_stage_order)},
        cache={layer: CacheRate(len(hits), sum(hits)) for layer, hits in sorted(lookups.items())},
        input_tokens=sum(call.input_tokens for call in calls),
        output_tokens=sum(call.output_tokens for call in calls),
        cost_usd=finite_sum(call.cost_usd for call in calls),
        saved_usd=finite_sum(call.cost_saved_usd for call in calls),
        unpriced_calls=sum(1 for call in calls if call.cost_usd is None),
        async_tasks=sum(1 for task in tasks if task.ran_async_thesis),
        async_fallbacks=len(fallback_tasks),
        second_pass_tasks=sum(1 for task in tasks if _had_second_pass(task)),
        errors=dict(errors.most_common()),
        abandoned=ended.abandoned,
        running=ended.running,
        abandoned_after_s=abandoned_after_s,
        skipped_events=screened.skipped,
        cancelled=ended.cancelled,
        judged=ended.judged,
        accepted=ended.accepted,
        calls=len(calls),
    )


def _stage_order(name: str) -> tuple[int, str]:
    return (STAGES.index(name), "") if name in STAGES else (len(STAGES), name)


def _had_second_pass(task: TaskRecord) -> bool:
    return any(isinstance(event, SecondPass) for event in task.events) or any(
        call.pass_number > 1 for call in task.calls
    )


# -- the last task ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StageTiming:
    stage: str
    pass_number: int
    start_s: float
    """Offset from the task's start; events are stamped when a step ends."""
    duration_s: float
    ttft_s: float | None = None
    provider: str | None = None
    model: str | None = None
    cache: str | None = None
    """The cache layer that answered (``"L2"``; ``"evidence"`` for cached evidence)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "pass_number": self.pass_number,
            "start_s": self.start_s,
            "duration_s": self.duration_s,
            "ttft_s": self.ttft_s,
            "provider": self.provider,
            "model": self.model,
            "cache": self.cache,
        }


@dataclass(frozen=True, slots=True)
class TaskBreakdown:
    task_id: str
    goal: str | None
    started_at: float | None
    flags: dict[str, Any]
    success: bool | None
    """``None`` while the task has no ``task_finished`` event."""
    abandoned: bool
    cancelled: bool
    total_s: float | None
    stages: list[StageTiming]
    gates: list[GateVerdict]
    async_fallback: str | None
    errors: list[str]
    cost_usd: float
    input_tokens: int
    output_tokens: int
    calls: int = 0
    unpriced_calls: int = 0
    """Persona calls without a known cost: all of them, and the cost is unknown."""
    accepted: bool | None = None
    """Whether the quality gate passed the answer; ``None`` with no gate."""

    @property
    def cost_known(self) -> bool:
        return self.unpriced_calls < self.calls or not self.calls

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "goal": self.goal,
            "started_at": self.started_at,
            "flags": dict(self.flags),
            "success": self.success,
            "abandoned": self.abandoned,
            "cancelled": self.cancelled,
            "accepted": self.accepted,
            "total_s": self.total_s,
            "stages": [stage.to_dict() for stage in self.stages],
            "gates": [
                gate.model_dump(mode="json", exclude={"version", "type", "task_id"})
                for gate in self.gates
            ],
            "async_fallback": self.async_fallback,
            "errors": list(self.errors),
            "cost_usd": self.cost_usd if self.cost_known else None,
            "unpriced_calls": self.unpriced_calls,
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
        }


def last_task(
    events: Iterable[Event],
    *,
    now: float | None = None,
    abandoned_after_s: float = DEFAULT_ABANDONED_AFTER_S,
) -> TaskBreakdown | None:
    """The most recent task (by its start), or ``None`` when there is no task."""
    moment = time.time() if now is None else now
    tasks = group_tasks(screen(events, now=moment).events)
    if not tasks:
        return None
    return _breakdown(tasks[-1], tasks[-1].abandoned(now=moment, after_s=abandoned_after_s))


def _breakdown(task: TaskRecord, abandoned: bool) -> TaskBreakdown:
    stages: list[StageTiming] = []
    for event in task.events:
        # Events are stamped when a step ends: it started ``duration`` earlier.
        duration = finite(getattr(event, "duration_s", None)) or 0.0
        start = finite(event.timestamp - duration - task.start_time) or 0.0
        if isinstance(event, EvidenceGathered):
            stages.append(
                StageTiming(
                    stage="evidence",
                    pass_number=1,
                    start_s=max(start, 0.0),
                    duration_s=duration,
                    cache="evidence" if event.from_cache else None,
                )
            )
        elif isinstance(event, PersonaLLMRun):
            stages.append(
                StageTiming(
                    stage=event.stage,
                    pass_number=event.pass_number,
                    start_s=max(start, 0.0),
                    duration_s=duration,
                    ttft_s=finite(event.ttft_s),
                    provider=event.provider,
                    model=event.model,
                    cache=event.cache_layer,
                )
            )
    stages.sort(key=lambda stage: stage.start_s)
    finished = task.finished
    fallback = next((e.reason for e in task.events if isinstance(e, AsyncFallback)), None)
    return TaskBreakdown(
        task_id=task.task_id,
        goal=task.started.goal if task.started is not None else None,
        started_at=finite(task.start_time),
        flags=dict(task.started.flags) if task.started is not None else {},
        success=finished.success if finished is not None else None,
        abandoned=abandoned,
        cancelled=task.cancelled,
        total_s=finite(finished.duration_s) if finished is not None else None,
        stages=stages,
        gates=[event for event in task.events if isinstance(event, GateVerdict)],
        async_fallback=fallback,
        errors=[
            f"{event.kind}: {event.message}" + (f" (stage {event.stage})" if event.stage else "")
            for event in task.events
            if isinstance(event, ErrorEvent)
        ],
        cost_usd=_task_cost(task.calls, finished),
        input_tokens=sum(call.input_tokens for call in task.calls),
        output_tokens=sum(call.output_tokens for call in task.calls),
        calls=len(task.calls),
        unpriced_calls=sum(call.cost_usd is None for call in task.calls),
        accepted=task.gate_passed,
    )


def _task_cost(calls: Sequence[PersonaLLMRun], finished: TaskFinished | None) -> float:
    if any(call.cost_usd is not None for call in calls):
        return finite_sum(call.cost_usd for call in calls)
    return (finite(finished.cost_usd) or 0.0) if finished is not None else 0.0
