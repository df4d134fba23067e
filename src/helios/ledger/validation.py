"""What a plausible event holds: checked before it is written, and again when it is read.

One event with a timestamp in the year 56971 (epoch milliseconds read as seconds) used to
break every reader that turns timestamps into dates, and one with a NaN duration poisons
every sum it enters. So:

- ``timestamp``: finite, not before 2000-01-01 UTC (:data:`EARLIEST_TIMESTAMP`) and not
  more than a day ahead of the clock of the process that checks it (:data:`MAX_FUTURE_S`);
- durations (fields ending in ``_s``) and money (ending in ``_usd``): finite and not
  negative, when present; savings (``cost_saved_usd``, ``time_saved_s``) finite, and may be
  negative (a prompt-cache write costs more than the uncached call it replaces);
- token counts (ending in ``_tokens``): whole numbers from 0 to :data:`MAX_TOKENS`.

Writers refuse an event that breaks a rule (:func:`check_events`: the stores' ``append``,
the ``LedgerWriter``'s ``emit``, ``helios ledger import``); readers skip one already stored
by an older Helios or written into the database directly (:func:`screen`), and say how many
they skipped. Other floats (a judge's score) may be NaN: they are opinions, not measures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

from helios.errors import LedgerError
from helios.ledger.events import Event

EARLIEST_TIMESTAMP = 946_684_800.0
"""2000-01-01T00:00:00Z: nothing Helios records happened earlier."""
MAX_FUTURE_S = 86_400.0
"""How far ahead of the checking clock a timestamp may be (clocks of hosts drift)."""
MAX_TOKENS = 1_000_000_000
"""More tokens than any call or task counts; a larger number is a unit or parsing error."""


def problem(event: Event, *, now: float) -> str | None:
    """``"field: what is wrong"`` for the first implausible value of ``event``, or ``None``."""
    stamp = event.timestamp
    if not _is_number(stamp) or not math.isfinite(stamp):
        return f"timestamp: {stamp!r} is not a finite number of seconds since the epoch"
    if stamp < EARLIEST_TIMESTAMP:
        return f"timestamp: {stamp:g} is before 2000-01-01 (expected seconds since the epoch)"
    if stamp > now + MAX_FUTURE_S:
        return (
            f"timestamp: {stamp:g} is more than a day in the future"
            " (milliseconds instead of seconds since the epoch?)"
        )
    for name in _measures(type(event)):
        value = getattr(event, name)
        if value is None:
            continue
        if not (_is_number(value) and math.isfinite(value)):
            return f"{name}: {value!r} is not a finite number"
        if value < 0 and "_saved_" not in name:
            return f"{name}: {value!r} is negative"
    for name in _counts(type(event)):
        count = getattr(event, name)
        if type(count) is not int or not 0 <= count <= MAX_TOKENS:
            return f"{name}: {count!r} is not a token count from 0 to {MAX_TOKENS:,}"
    return None


def _is_number(value: object) -> bool:
    # an event built with ``model_construct`` may hold anything; bool is not a measure
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_events(events: Iterable[Event], *, now: float | None = None) -> None:
    """Raise :class:`LedgerError` naming the first implausible event, task and field."""
    moment = time.time() if now is None else now
    for event in events:
        found = problem(event, now=moment)
        if found is not None:
            raise LedgerError(
                f"refused {event.type} event of task {event.task_id!r}: {found};"
                " nothing of its batch was written"
            )


@dataclass(slots=True)
class Screened:
    """Events fit to read, and what was left out (``skipped``, one example per reason)."""

    events: list[Event] = field(default_factory=list)
    skipped: int = 0
    example: str | None = None

    def warning(self) -> str | None:
        """One line for stderr or a log, ``None`` when nothing was skipped."""
        if not self.skipped:
            return None
        noun = "event" if self.skipped == 1 else "events"
        return (
            f"skipped {self.skipped} ledger {noun} with implausible values"
            f" (e.g. {self.example}); see `helios ledger export` to inspect them"
        )


def screen(events: Iterable[Event], *, now: float | None = None) -> Screened:
    """``events`` without the implausible ones, counted."""
    moment = time.time() if now is None else now
    result = Screened()
    for event in events:
        found = problem(event, now=moment)
        if found is None:
            result.events.append(event)
            continue
        result.skipped += 1
        if result.example is None:
            result.example = f"{event.type} of task {event.task_id!r}: {found}"
    return result


@cache
def _measures(kind: type[Event]) -> tuple[str, ...]:
    return tuple(n for n in kind.model_fields if n.endswith(("_s", "_usd")))


@cache
def _counts(kind: type[Event]) -> tuple[str, ...]:
    return tuple(n for n in kind.model_fields if n.endswith("_tokens"))
