"""Where events go: one ``emit()`` interface for every producer.

The pipeline emits through an :class:`EventSink`; the ledger's stores implement the same
protocol. :class:`MemorySink` keeps events in a list (tests and the CLI summary read it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from helios.ledger.events import Event

E = TypeVar("E")


class EventSink(Protocol):
    def emit(self, event: Event) -> None:
        """Accept one event without blocking the caller."""


class MemorySink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]

    def types(self) -> list[str]:
        return [event.type for event in self.events]


class FanOut:
    """Sends each event to several sinks (e.g. the ledger and the CLI's memory)."""

    def __init__(self, sinks: Sequence[EventSink]) -> None:
        self.sinks = list(sinks)

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)
