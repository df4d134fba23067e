"""An in-memory ledger store: for tests and short-lived processes that keep nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from helios.ledger.events import Event, FlagChanged, FlagValue, TaskStarted
from helios.ledger.store import ANY_EVENT, EventQuery, LedgerStore
from helios.ledger.validation import MAX_FUTURE_S, check_events


class MemoryLedgerStore(LedgerStore):
    name = "memory"

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._overrides: dict[str, FlagValue] = {}
        self._lock = asyncio.Lock()

    async def append(self, events: Sequence[Event]) -> None:
        batch = list(events)
        check_events(batch)
        async with self._lock:
            self._events.extend(batch)

    async def query(self, query: EventQuery = ANY_EVENT) -> list[Event]:
        selected = self._events
        if query.last_tasks is not None:
            latest = time.time() + MAX_FUTURE_S  # NaN fails the comparison too
            started = [e for e in selected if isinstance(e, TaskStarted) and e.timestamp <= latest]
            ordered = sorted(started, key=lambda e: e.timestamp)
            recent = ordered[len(ordered) - query.last_tasks :] if query.last_tasks > 0 else []
            keep = {e.task_id for e in recent}
            selected = [e for e in selected if e.task_id in keep]
        return [e for e in selected if _matches(e, query)]

    async def last_sequence(self) -> int:
        return len(self._events)

    async def events_after(self, sequence: int, *, limit: int = 1000) -> list[tuple[int, Event]]:
        start = max(sequence, 0)
        chosen = self._events[start : start + max(limit, 0)]
        return [(start + 1 + offset, event) for offset, event in enumerate(chosen)]

    async def count(self) -> int:
        return len(self._events)

    async def set_flag_override(
        self, flag: str, value: FlagValue | None, *, actor: str, reason: str
    ) -> FlagChanged:
        async with self._lock:
            old = self._overrides.get(flag)
            # the event first: a value it rejects must leave the override untouched
            event = FlagChanged(flag=flag, old=old, new=value, reason=reason, actor=actor)
            if value is None:
                self._overrides.pop(flag, None)
            else:
                self._overrides[flag] = value
            self._events.append(event)
            return event

    async def flag_overrides(self) -> dict[str, FlagValue]:
        return dict(self._overrides)

    async def migrations(self) -> list[str]:
        return []


def _matches(event: Event, query: EventQuery) -> bool:
    if query.since is not None and event.timestamp < query.since:
        return False
    if query.until is not None and event.timestamp >= query.until:
        return False
    if query.task_ids is not None and event.task_id not in query.task_ids:
        return False
    return query.types is None or event.type in query.types
