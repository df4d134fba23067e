"""An in-memory ledger store: for tests and short-lived processes that keep nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from helios.ledger.events import Event, FlagChanged, FlagValue, TaskStarted
from helios.ledger.store import ANY_EVENT, EventQuery, LedgerStore


class MemoryLedgerStore(LedgerStore):
    name = "memory"

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._overrides: dict[str, FlagValue] = {}
        self._lock = asyncio.Lock()

    async def append(self, events: Sequence[Event]) -> None:
        async with self._lock:
            self._events.extend(events)

    async def query(self, query: EventQuery = ANY_EVENT) -> list[Event]:
        selected = self._events
        if query.last_tasks is not None:
            started = [e for e in selected if isinstance(e, TaskStarted)]
            ordered = sorted(started, key=lambda e: e.timestamp)
            recent = ordered[len(ordered) - query.last_tasks :] if query.last_tasks > 0 else []
            keep = {e.task_id for e in recent}
            selected = [e for e in selected if e.task_id in keep]
        return [e for e in selected if _matches(e, query)]

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
