"""The ledger store contract: events appended durably, read back by time, task and type.

Every stored event also has an insertion *sequence*: a number greater than that of every
event committed before it (SQLite's rowid, PostgreSQL's identity column, a list index in
memory). Clocks disagree and timestamps can be wrong; the sequence is how a reader follows
the ledger (:meth:`LedgerStore.events_after`, :class:`~helios.ledger.tail.LedgerTail`).

Stores also keep the feature-flag overrides, because an override and the ``flag_changed``
event that records it must be written together (one transaction): a running process reads
overrides from the store, an analysis reads the event. Backends: SQLite (the embedded
default) and PostgreSQL (several Helios processes sharing one ledger); one contract test
suite runs against both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from helios.ledger.events import Event, FlagChanged, FlagValue
from helios.ledger.task_list import TaskListQuery, TaskPage, page_from_events
from helios.ledger.window import WINDOW_TYPES, WindowFacts, facts_from_events


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events to read; every field narrows the selection, ``None`` means any."""

    since: float | None = None
    """Seconds since the epoch, inclusive."""
    until: float | None = None
    """Seconds since the epoch, exclusive."""
    task_ids: Sequence[str] | None = None
    types: Sequence[str] | None = None
    last_tasks: int | None = None
    """Only the events of the most recent N tasks (by their ``task_started`` time; a start
    stamped implausibly far ahead, see :mod:`.validation`, is not a recent task)."""


ANY_EVENT = EventQuery()


class LedgerStore(ABC):
    """Durable event storage. Every method is safe to call concurrently on one event loop;
    blocking drivers run in worker threads."""

    name: str

    @abstractmethod
    async def append(self, events: Sequence[Event]) -> None:
        """Write ``events`` in one transaction: on return they are durable; on error none
        of them is stored. A batch holding an implausible event (:mod:`.validation`) is
        refused whole with a :class:`~helios.errors.LedgerError`."""

    @abstractmethod
    async def query(self, query: EventQuery = ANY_EVENT) -> list[Event]:
        """Matching events in the order they were appended."""

    @abstractmethod
    async def last_sequence(self) -> int:
        """The sequence of the newest event, 0 when the store is empty."""

    @abstractmethod
    async def events_after(self, sequence: int, *, limit: int = 1000) -> list[tuple[int, Event]]:
        """Up to ``limit`` events with a sequence above ``sequence``, as ``(sequence, event)``
        in sequence order. Sequences grow in commit order: once a reader has seen ``n``, no
        event committed later gets a number below it."""

    @abstractmethod
    async def count(self) -> int:
        """How many events the store holds."""

    @abstractmethod
    async def set_flag_override(
        self, flag: str, value: FlagValue | None, *, actor: str, reason: str
    ) -> FlagChanged:
        """Set (or, with ``None``, remove) a flag's override and append the matching
        ``flag_changed`` event, atomically; returns that event."""

    @abstractmethod
    async def flag_overrides(self) -> dict[str, FlagValue]:
        """Every flag override in force."""

    @abstractmethod
    async def migrations(self) -> list[str]:
        """The names of the schema migrations applied to this store, in order."""

    async def list_tasks(self, query: TaskListQuery) -> TaskPage:
        """One page of tasks, newest start first (:mod:`.task_list`). This default reads
        every task's start and finish; the SQL stores answer from their indexes."""
        types = ["task_started", "task_finished"]
        return page_from_events(await self.query(EventQuery(types=types)), query)

    async def window_facts(self, since: float, until: float) -> WindowFacts:
        """What the dashboard's overview reads of the events stamped from ``since`` to
        ``until`` (:mod:`.window`). This default decodes them; the SQL stores read only
        the fields it needs."""
        events = await self.query(EventQuery(since=since, types=WINDOW_TYPES))
        return facts_from_events(events, since, until)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default holds none."""
