"""What the dashboard's overview needs from one time window, read without decoding events.

A window of a busy ledger holds hundreds of thousands of events; decoding each into its
pydantic model costs far more than the figures drawn from it. The SQL stores answer
:class:`WindowFacts` with four statements that read only the fields the overview uses
(``json_extract`` in SQLite, ``->>`` in PostgreSQL) and count in SQL what needs no more
than a count; :func:`facts_from_events` is the same over decoded events, for the stores
without SQL. An event belongs to the window when ``since <= timestamp <= until``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from helios.ledger.events import CacheLookup, Event, PersonaLLMRun, TaskFinished, TaskStarted

WINDOW_TYPES = ("task_started", "task_finished", "persona_llm_run", "cache_lookup")


@dataclass(frozen=True, slots=True)
class CallFact:
    """One persona call, as far as the overview cares."""

    persona: str
    streaming: bool
    ttft_s: float
    duration_s: float
    cost_usd: float | None
    cost_saved_usd: float | None
    cache_layer: str | None
    cache_read_tokens: int


@dataclass(slots=True)
class WindowFacts:
    starts_per_minute: Counter[int] = field(default_factory=Counter)
    """Tasks started, by minute (``floor(timestamp / 60)``)."""
    finishes: Counter[tuple[bool, bool]] = field(default_factory=Counter)
    """Tasks finished, by ``(success, accepted)``."""
    lookups: Counter[tuple[str, str, bool]] = field(default_factory=Counter)
    """Cache lookups, by ``(layer, persona, hit)``."""
    calls: list[CallFact] = field(default_factory=list)


def facts_from_events(events: Iterable[Event], since: float, until: float) -> WindowFacts:
    facts = WindowFacts()
    for event in events:
        if not since <= event.timestamp <= until:
            continue
        if isinstance(event, TaskStarted):
            facts.starts_per_minute[math.floor(event.timestamp / 60.0)] += 1
        elif isinstance(event, TaskFinished):
            facts.finishes[(event.success, event.accepted_pass is not None)] += 1
        elif isinstance(event, CacheLookup):
            facts.lookups[(event.layer, event.persona, event.hit)] += 1
        elif isinstance(event, PersonaLLMRun):
            facts.calls.append(
                CallFact(
                    event.persona,
                    event.streaming,
                    event.ttft_s,
                    event.duration_s,
                    event.cost_usd,
                    event.cost_saved_usd,
                    event.cache_layer,
                    event.cache_read_tokens,
                )
            )
    return facts


def window_sql(dialect: Literal["sqlite", "postgres"]) -> dict[str, str]:
    """The statements, each taking ``(since, until)``: ``starts`` ``(minute, n)``,
    ``finishes`` ``(success, accepted, n)``, ``lookups`` ``(layer, persona, hit, n)``,
    ``calls`` the fields of :class:`CallFact` in order."""
    if dialect == "sqlite":
        mark = "?"

        def text(name: str) -> str:
            return f"json_extract(body, '$.{name}')"

        def flag(name: str) -> str:
            return f"json_extract(body, '$.{name}')"

        minute = "CAST(timestamp / 60.0 AS INTEGER)"  # floor: timestamps are positive
    else:
        mark = "%s"

        def text(name: str) -> str:
            return f"(body->>'{name}')"

        def flag(name: str) -> str:
            return f"(body->>'{name}')::boolean"

        minute = "floor(timestamp / 60.0)::bigint"
    window = f"timestamp >= {mark} AND timestamp <= {mark}"
    return {
        "starts": (
            f"SELECT {minute}, COUNT(*) FROM events WHERE type = 'task_started' AND {window}"
            f" GROUP BY 1"
        ),
        "finishes": (
            f"SELECT {flag('success')}, {text('accepted_pass')} IS NOT NULL, COUNT(*)"
            f" FROM events WHERE type = 'task_finished' AND {window} GROUP BY 1, 2"
        ),
        "lookups": (
            f"SELECT {text('layer')}, {text('persona')}, {flag('hit')}, COUNT(*)"
            f" FROM events WHERE type = 'cache_lookup' AND {window} GROUP BY 1, 2, 3"
        ),
        "calls": (
            f"SELECT {text('persona')}, {flag('streaming')}, {text('ttft_s')},"
            f" {text('duration_s')}, {text('cost_usd')}, {text('cost_saved_usd')},"
            f" {text('cache_layer')}, {text('cache_read_tokens')}"
            f" FROM events WHERE type = 'persona_llm_run' AND {window}"
        ),
    }


def facts_from_rows(
    starts: Iterable[tuple[int | float, int]],
    finishes: Iterable[tuple[object, object, int]],
    lookups: Iterable[tuple[str, str, object, int]],
    calls: Iterable[tuple[object, ...]],
) -> WindowFacts:
    """:class:`WindowFacts` from the rows of :func:`window_sql`'s statements (values as
    either driver returns them: JSON numbers, ``"NaN"`` strings, 0/1 or booleans)."""
    facts = WindowFacts()
    for minute, count in starts:
        facts.starts_per_minute[int(minute)] += int(count)
    for success, accepted, count in finishes:
        facts.finishes[(_bool(success), _bool(accepted))] += int(count)
    for layer, persona, hit, count in lookups:
        facts.lookups[(str(layer), str(persona), _bool(hit))] += int(count)
    for who, streaming, ttft, duration, cost, saved, answered_by, read in calls:
        facts.calls.append(
            CallFact(
                str(who),
                _bool(streaming),
                _float(ttft),
                _float(duration),
                None if cost is None else _float(cost),
                None if saved is None else _float(saved),
                None if answered_by is None else str(answered_by),
                int(str(read)) if read is not None else 0,
            )
        )
    return facts


def _bool(value: object) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true")
    return bool(value)


def _float(value: object) -> float:
    """A JSON number, or one of the strings the codec writes for non-finite floats."""
    try:
        return float(str(value)) if not isinstance(value, int | float) else float(value)
    except ValueError:
        return math.nan
