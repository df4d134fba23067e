"""One task's timeline: its steps as bars on a common time axis, from its events.

Events are stamped when a step *ends*, so a bar runs from ``timestamp - duration_s`` to
``timestamp``; a streamed call's time to first token is a mark on its bar. Times are
seconds after the task started (its ``task_started`` event, else its first event).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from helios.ledger.events import (
    CacheLookup,
    ErrorEvent,
    Event,
    EvidenceGathered,
    GateVerdict,
    PersonaLLMRun,
    SecondPass,
    TaskFinished,
    TaskStarted,
)


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    start_s: float
    end_s: float
    event_index: int
    """The row of the event in the task's event table (its anchor)."""
    ttft_s: float | None = None
    cache_layer: str | None = None
    cost_usd: float | None = None
    detail: str = ""

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class Mark:
    """Something that happened at one moment: a gate verdict, a cache lookup, an error."""

    label: str
    at_s: float
    event_index: int
    good: bool | None = None


@dataclass(slots=True)
class Timeline:
    task_id: str
    started: TaskStarted | None = None
    finished: TaskFinished | None = None
    bars: list[Bar] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    span_s: float = 0.0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    saved_usd: float = 0.0

    def percent(self, seconds: float) -> float:
        """Where ``seconds`` falls on the axis, 0 to 100."""
        if self.span_s <= 0:
            return 0.0
        return max(0.0, min(100.0, 100.0 * seconds / self.span_s))


def timeline(task_id: str, events: Sequence[Event]) -> Timeline:
    result = Timeline(task_id)
    finite = [e.timestamp for e in events if math.isfinite(e.timestamp)]
    starts = [e for e in events if isinstance(e, TaskStarted)]
    origin = starts[0].timestamp if starts else (min(finite) if finite else 0.0)
    for index, event in enumerate(events):
        at = event.timestamp - origin if math.isfinite(event.timestamp) else 0.0
        if isinstance(event, TaskStarted):
            result.started = event
        elif isinstance(event, TaskFinished):
            result.finished = event
            result.marks.append(Mark("finished", at, index, event.success))
        elif isinstance(event, EvidenceGathered):
            cached = "from cache" if event.from_cache else f"{event.passages} passages"
            result.bars.append(_bar("evidence", at, event.duration_s, index, detail=cached))
        elif isinstance(event, PersonaLLMRun):
            result.bars.append(_call_bar(event, at, index))
            if event.cost_usd is None:
                result.unpriced_calls += 1
            elif math.isfinite(event.cost_usd):
                result.cost_usd += event.cost_usd
            if event.cache_layer is not None and event.cost_saved_usd is not None:
                result.saved_usd += event.cost_saved_usd
        elif isinstance(event, GateVerdict):
            verdict = "passed" if event.passed else "failed"
            result.marks.append(
                Mark(f"gate, pass {event.pass_number}: {verdict}", at, index, event.passed)
            )
        elif isinstance(event, SecondPass):
            result.marks.append(Mark(f"second pass {event.pass_number}", at, index))
        elif isinstance(event, CacheLookup):
            outcome = "hit" if event.hit else "miss"
            result.marks.append(
                Mark(f"{event.layer} {outcome}: {event.persona}", at, index, event.hit or None)
            )
        elif isinstance(event, ErrorEvent):
            result.marks.append(Mark(f"error: {event.kind}", at, index, False))
    ends = [bar.end_s for bar in result.bars] + [mark.at_s for mark in result.marks]
    result.span_s = max([0.0, *ends])
    return result


def _call_bar(call: PersonaLLMRun, at: float, index: int) -> Bar:
    label = call.persona if call.pass_number == 1 else f"{call.persona} (pass {call.pass_number})"
    return _bar(
        label,
        at,
        call.duration_s,
        index,
        ttft_s=call.ttft_s if call.streaming and call.cache_layer is None else None,
        cache_layer=call.cache_layer,
        cost_usd=call.cost_usd,
        detail=f"{call.provider}:{call.model}",
    )


def _bar(
    label: str,
    end_s: float,
    duration_s: float,
    index: int,
    *,
    ttft_s: float | None = None,
    cache_layer: str | None = None,
    cost_usd: float | None = None,
    detail: str = "",
) -> Bar:
    duration = duration_s if math.isfinite(duration_s) and duration_s >= 0 else 0.0
    ttft = ttft_s if ttft_s is not None and math.isfinite(ttft_s) and ttft_s >= 0 else None
    return Bar(label, max(0.0, end_s - duration), end_s, index, ttft, cache_layer, cost_usd, detail)
