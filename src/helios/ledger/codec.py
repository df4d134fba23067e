"""Events to and from the JSON text that durable stores and JSONL files hold.

The form is the event's JSON (``model_dump_json``) with two differences that make every
event that validates also storable and readable again, so one odd value can never block
the writer's queue or make the ledger unreadable:

- non-finite floats are written ``"NaN"``, ``"Infinity"``, ``"-Infinity"``: JSON has no
  such numbers and pydantic would write ``null``, which a ``float`` field rejects on read;
  pydantic parses the strings back to the same floats;
- a lone surrogate in a string (text decoded with ``surrogateescape``) cannot be encoded
  as UTF-8; it is stored as U+FFFD, the one lossy case.

:func:`event_filter` translates an :class:`EventQuery` into the ``WHERE`` clause both SQL
stores share, so they select exactly what the memory store does.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_json

from helios.errors import LedgerError
from helios.ledger.events import (
    EVENT_ADAPTER,
    SCHEMA_VERSION,
    Event,
    FlagValue,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.store import EventQuery
from helios.ledger.task_list import TaskRow
from helios.ledger.validation import MAX_FUTURE_S

logger = logging.getLogger(__name__)


def encode_event(event: Event) -> str:
    """The JSON text of ``event``; raises :class:`LedgerError` for an object that is not a
    valid event (one built with ``model_construct`` around a value of the wrong type)."""
    try:
        return to_json(event.model_dump(warnings="error"), inf_nan_mode="strings").decode()
    except PydanticSerializationError:
        pass  # a lone surrogate (or a bad value, which the retry below names)
    try:
        return to_json(
            _without_surrogates(event.model_dump(warnings="error")), inf_nan_mode="strings"
        ).decode()
    except PydanticSerializationError as exc:
        raise LedgerError(
            f"cannot encode {event.type} event of task {event.task_id!r}: {exc}"
        ) from exc


def decode_event(row_id: int, body: str | bytes) -> Event:
    """The event stored in row ``row_id``; raises :class:`LedgerError` naming the row when
    it does not parse (written by a newer Helios, or edited by hand)."""
    try:
        return EVENT_ADAPTER.validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise LedgerError(
            f"ledger row {row_id} cannot be read by this Helios version (event schema"
            f" {SCHEMA_VERSION}): {where}: {first['msg']}"
        ) from exc


def decode_sequenced(rows: list[tuple[int, str]]) -> list[tuple[int, Event]]:
    """Rows ``(id, body)`` as ``(sequence, event)``; a row this version cannot read is
    logged and left out, so that one such row never stops a reader following the ledger."""
    events: list[tuple[int, Event]] = []
    for row_id, body in rows:
        try:
            events.append((row_id, decode_event(row_id, body)))
        except LedgerError as exc:
            logger.warning("%s; skipped", exc)
    return events


def task_row(started: str | bytes, finished: str | bytes | None) -> TaskRow:
    """A task list row from the JSON of its ``task_started`` and ``task_finished`` events."""
    start = EVENT_ADAPTER.validate_json(started)
    finish = None if finished is None else EVENT_ADAPTER.validate_json(finished)
    if not isinstance(start, TaskStarted) or not isinstance(finish, TaskFinished | None):
        raise LedgerError(f"task {start.task_id!r}: its start or finish is of the wrong type")
    return TaskRow(start, finish)


def encode_flag_value(value: FlagValue) -> str:
    return json.dumps(value)


def decode_flag_value(text: str) -> FlagValue:
    value = json.loads(text)
    if not isinstance(value, bool | int | float | str):
        raise LedgerError(f"flag override value {text!r} is not a bool, number or string")
    return value


def event_filter(
    query: EventQuery, dialect: Literal["sqlite", "postgres"]
) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause (``""`` for none) and its parameters selecting ``query``'s events.

    Lists travel as one parameter (a JSON array for SQLite, an array for PostgreSQL), so
    any number of task ids fits and the statement text stays the same.
    """
    mark = "?" if dialect == "sqlite" else "%s"
    clauses: list[str] = []
    params: list[Any] = []
    if query.since is not None:
        clauses.append(f"timestamp >= {mark}")
        params.append(query.since)
    if query.until is not None:
        clauses.append(f"timestamp < {mark}")
        params.append(query.until)
    for column, values in (("task_id", query.task_ids), ("type", query.types)):
        if values is None:
            continue
        if dialect == "sqlite":
            clauses.append(f"{column} IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(values)))
        else:
            clauses.append(f"{column} = ANY(%s)")
            params.append(list(values))
    if query.last_tasks is not None:
        # ties on time go to the later append, as in the memory store's stable sort
        # a start stamped far ahead (or NaN, NULL in SQLite) would stay "the latest" forever
        clauses.append(
            "task_id IN (SELECT task_id FROM events WHERE type = 'task_started'"
            f" AND timestamp <= {mark} ORDER BY timestamp DESC, id DESC LIMIT {mark})"
        )
        params.extend([time.time() + MAX_FUTURE_S, max(query.last_tasks, 0)])
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_without_surrogates(key): _without_surrogates(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_surrogates(item) for item in value]
    return value
