"""The overview's figures, from the ledger's events of one time window.

Only the window's events are read (``now - window <= timestamp <= now``, through the
ledger's ``(type, timestamp)`` index, and only the fields used: :mod:`helios.ledger.window`),
so the page costs the same whatever the ledger's age. Tasks
are counted by when they *started* (tasks per minute) and by when they *finished* (success
and acceptance); a task is *accepted* when its answer passed the quality gate
(``task_finished.accepted_pass`` is set). Latency and TTFT percentiles are those of the
calls a provider answered: a call a cache layer answered took no model time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from helios.ledger.events import Event, FlagChanged
from helios.ledger.window import CallFact, WindowFacts
from helios.percentiles import percentile

WINDOWS: dict[str, float] = {"15m": 900.0, "1h": 3600.0, "6h": 21600.0, "24h": 86400.0}
"""The windows the overview offers, by the name its URL carries."""
DEFAULT_WINDOW = "1h"


@dataclass(frozen=True, slots=True)
class Rate:
    part: int
    whole: int

    @property
    def value(self) -> float | None:
        return self.part / self.whole if self.whole else None


@dataclass(slots=True)
class PersonaLatency:
    calls: int = 0
    cached: int = 0
    durations: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    cost_usd: float = 0.0
    unpriced: int = 0

    @property
    def latency_p50(self) -> float | None:
        return percentile(self.durations, 0.5)

    @property
    def latency_p95(self) -> float | None:
        return percentile(self.durations, 0.95)

    @property
    def ttft_p50(self) -> float | None:
        return percentile(self.ttfts, 0.5)

    @property
    def ttft_p95(self) -> float | None:
        return percentile(self.ttfts, 0.95)


@dataclass(slots=True)
class CacheFigures:
    lookups: int = 0
    hits: int = 0
    saved_usd: float = 0.0
    cache_read_tokens: int = 0

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None


@dataclass(slots=True)
class Overview:
    window: str
    window_s: float
    now: float
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    accepted: int = 0
    per_minute: list[tuple[float, int]] = field(default_factory=list)
    """``(minute start, tasks started)`` for every minute of the window, oldest first."""
    personas: dict[str, PersonaLatency] = field(default_factory=dict)
    layers: dict[str, CacheFigures] = field(default_factory=dict)
    cache_personas: dict[str, CacheFigures] = field(default_factory=dict)
    spend_usd: float = 0.0
    unpriced_calls: int = 0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed

    @property
    def tasks_per_minute(self) -> float:
        return self.started / (self.window_s / 60.0)

    @property
    def success(self) -> Rate:
        return Rate(self.succeeded, self.finished)

    @property
    def acceptance(self) -> Rate:
        return Rate(self.accepted, self.finished)

    @property
    def chart(self) -> dict[str, list[float] | list[int]]:
        """The tasks-per-minute series as the page's chart reads it."""
        return {"t": [t for t, _ in self.per_minute], "n": [n for _, n in self.per_minute]}

    @property
    def saved_usd(self) -> float:
        return sum(figures.saved_usd for figures in self.layers.values())


def overview(facts: WindowFacts, *, window: str, now: float) -> Overview:
    """The figures of ``facts``, read from the window ending at ``now``."""
    window_s = WINDOWS[window]
    result = Overview(window=window, window_s=window_s, now=now)
    first = math.floor((now - window_s) / 60.0)
    last = math.floor(now / 60.0)
    result.per_minute = [
        (60.0 * minute, facts.starts_per_minute.get(minute, 0)) for minute in range(first, last + 1)
    ]
    result.started = sum(facts.starts_per_minute.values())
    for (success, accepted), count in facts.finishes.items():
        if success:
            result.succeeded += count
        else:
            result.failed += count
        if accepted:
            result.accepted += count
    for (layer, persona, hit), count in facts.lookups.items():
        for figures in (
            result.layers.setdefault(layer, CacheFigures()),
            result.cache_personas.setdefault(persona, CacheFigures()),
        ):
            figures.lookups += count
            figures.hits += count if hit else 0
    for call in facts.calls:
        _count_call(result, call)
    result.personas = dict(sorted(result.personas.items()))
    result.layers = dict(sorted(result.layers.items()))
    result.cache_personas = dict(sorted(result.cache_personas.items()))
    return result


def _count_call(result: Overview, call: CallFact) -> None:
    persona = result.personas.setdefault(call.persona, PersonaLatency())
    persona.calls += 1
    if call.cost_usd is None:
        persona.unpriced += 1
        result.unpriced_calls += 1
    elif math.isfinite(call.cost_usd):
        persona.cost_usd += call.cost_usd
        result.spend_usd += call.cost_usd
    if call.cache_layer is not None:
        persona.cached += 1
        saved = call.cost_saved_usd if call.cost_saved_usd is not None else 0.0
        for figures in (
            result.layers.setdefault(call.cache_layer, CacheFigures()),
            result.cache_personas.setdefault(call.persona, CacheFigures()),
        ):
            figures.saved_usd += saved if math.isfinite(saved) else 0.0
        return
    if math.isfinite(call.duration_s):
        persona.durations.append(call.duration_s)
    if call.streaming and math.isfinite(call.ttft_s):
        persona.ttfts.append(call.ttft_s)
    if call.cache_read_tokens:
        result.layers.setdefault("L1", CacheFigures()).cache_read_tokens += call.cache_read_tokens
        by_persona = result.cache_personas.setdefault(call.persona, CacheFigures())
        by_persona.cache_read_tokens += call.cache_read_tokens


def recent_flag_changes(events: Iterable[Event], limit: int = 10) -> list[FlagChanged]:
    """The last ``limit`` flag changes, newest first."""
    changes = [event for event in events if isinstance(event, FlagChanged)]
    return changes[::-1][:limit]
