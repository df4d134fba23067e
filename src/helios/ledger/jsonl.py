"""Events to and from JSON Lines files: exports for other tools, imports of old ledgers.

:func:`export_jsonl` writes one event per line in Helios's JSON form (the stores' form:
see :mod:`helios.ledger.codec`). :func:`import_jsonl` reads that form (a line with a
``type``) and the reference design's events (a line with an ``event``), mapped so:

| reference design                         | Helios                  | when absent                 |
|------------------------------------------|-------------------------|-----------------------------|
| `event`                                  | `type`                  | import refused              |
| `task_id` (a number becomes a string)    | `task_id`               | import refused              |
| `timestamp`: ISO 8601 or epoch seconds   | `timestamp` (epoch s)   | time of the import          |
| **persona_llm_run**                      |                         |                             |
| `persona`                                | `persona`               | `"unknown"`                 |
| `stage`                                  | `stage`                 | the persona                 |
| `pass` or `pass_number`                  | `pass_number`           | 1                           |
| `provider`, `model`                      | `provider`, `model`     | `"unknown"`                 |
| `streaming`                              | `streaming`             | false                       |
| `ttft_sec`                               | `ttft_s`                | the duration (no stream)    |
| `duration_sec`                           | `duration_s`            | 0                           |
| (computed: 1 - ttft / duration)          | `perceived_improvement` | 0 when the duration is 0    |
| `tokens_in` or `input_tokens`            | `input_tokens`          | 0                           |
| `tokens_out` or `output_tokens`          | `output_tokens`         | 0                           |
| `cache_read_tokens`, `cache_write_tokens`| same                    | 0                           |
| `cost` or `cost_usd`                     | `cost_usd`              | null (unknown)              |
| `cache_layer`                            | `cache_layer`           | null (a provider call)      |
| **task_started**                         |                         |                             |
| `goal`, `kind`, `documents`              | same                    | `""`, `"dialectic"`, 0      |
| `flags` object + top-level booleans      | `flags`                 | `{}`                        |
| **task_finished**                        |                         |                             |
| `success`, else `status` in ok, success, succeeded, completed, done | `success` | not `error` |
| `duration_sec`                           | `duration_s`            | 0                           |
| `cost` or `cost_usd`                     | `cost_usd`              | 0                           |
| `tokens_in`, `tokens_out`                | `input_tokens`, `output_tokens` | 0                   |
| `passes`, `accepted_pass`                | same                    | 0, null                     |
| **async_fallback**: `reason` or `error`  | `reason`                | `"unknown"`                 |
| **error**: `kind` or `error_type`        | `kind`                  | `"error"`                   |
| **error**: `message` or `error`          | `message`               | `""`                        |
| **error**: `stage` or `persona`          | `stage`                 | null                        |
| any other Helios event type              | its fields; `*_sec` → `*_s` | the event's defaults    |

Top-level booleans of a task_started line (`"async_thesis": true`) are flags, as the
reference design stamped them beside the event's fields; ``flags`` wins on a clash.

Other fields of the five mapped types are ignored.

An import is all or nothing: the whole file is checked first, and one line that is not
JSON, names an unknown event type, lacks a ``task_id``, has a value of the wrong type or an
implausible one (:mod:`helios.ledger.validation`: a timestamp in milliseconds, a negative
duration, a NaN cost) refuses the import with an :class:`InputError` that names each such
line as ``file:line: field: reason``; nothing is written. Blank lines are ignored. A valid
file is then appended in batches of ``batch_size``, each batch one transaction; should the
store fail midway (a server gone), the error says how many events, up to which line, were
already committed.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TextIO, get_args

from pydantic import ValidationError

from helios.errors import InputError, LedgerError
from helios.ledger.codec import encode_event
from helios.ledger.events import EVENT_ADAPTER, SCHEMA_VERSION, Event
from helios.ledger.store import EventQuery, LedgerStore
from helios.ledger.validation import problem

HELIOS_TYPES = frozenset(cls.model_fields["type"].default for cls in get_args(get_args(Event)[0]))
_OK_STATUSES = frozenset({"ok", "success", "succeeded", "completed", "done"})
_TASK_STARTED_FIELDS = frozenset(
    {"event", "type", "task_id", "timestamp", "version", "goal", "kind", "documents", "flags"}
)


MAX_LISTED_PROBLEMS = 20
"""How many bad lines an import error lists (it counts them all)."""


@dataclass(slots=True)
class ImportReport:
    imported: int = 0
    lines: int = 0
    """Lines read, blank ones included."""


async def export_jsonl(store: LedgerStore, query: EventQuery, out: TextIO) -> int:
    """Write ``query``'s events to ``out``, one per line in append order; returns how many."""
    events = await store.query(query)

    def write() -> None:
        out.writelines(encode_event(event) + "\n" for event in events)

    await asyncio.to_thread(write)
    return len(events)


async def import_jsonl(
    path: Path, store: LedgerStore, *, batch_size: int = 1000, now: float | None = None
) -> ImportReport:
    """Append the events of the JSONL file at ``path`` to ``store``; see the module doc.

    Raises :class:`InputError` when the file cannot be read or holds a bad line (nothing is
    written then); a store failure raises :class:`LedgerError` saying what was committed.
    ``now`` is the time plausible timestamps are judged against (default: the clock).
    """
    moment = time.time() if now is None else now
    problems = await asyncio.to_thread(check_jsonl, path, now=moment)
    if problems:
        raise InputError(_refusal(path, problems))
    report = ImportReport()
    handle = await asyncio.to_thread(_open, path)
    try:
        while True:
            committed_through = report.lines
            # reading and parsing are blocking and CPU work: both stay off the event loop
            events, report.lines = await asyncio.to_thread(
                _read_batch, handle, report.lines, batch_size, moment
            )
            if events:
                try:
                    await store.append(events)
                except LedgerError as exc:
                    raise LedgerError(
                        f"{path}: import stopped in lines {committed_through + 1}-{report.lines}:"
                        f" {exc}; the {report.imported} events of lines 1-{committed_through}"
                        " are committed"
                    ) from exc
                report.imported += len(events)
            if len(events) < batch_size:
                return report
    finally:
        await asyncio.to_thread(handle.close)


def check_jsonl(path: Path, *, now: float) -> list[tuple[int, str]]:
    """Every bad line of the file at ``path`` as ``(line number, reason)``, 1-based."""
    handle = _open(path)
    problems: list[tuple[int, str]] = []
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                parse_line(line, now=now)
            except ValueError as exc:
                problems.append((number, str(exc)))
    return problems


def parse_line(line: bytes | str, *, now: float | None = None) -> Event:
    """The event on one JSONL line, in either form; raises ``ValueError`` saying why not
    (an implausible value too, judged against ``now``, default the clock)."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object but {type(data).__name__}")
    if "type" in data:
        kind = data["type"]
    elif "event" in data:
        kind = data["event"]
        data = _from_reference(data)
    else:
        raise ValueError("no event type: neither 'type' (Helios) nor 'event' (reference)")
    if kind not in HELIOS_TYPES:
        raise ValueError(f"unknown event type {kind!r}")
    if data.get("task_id") in (None, "") and kind != "flag_changed":
        raise ValueError("missing task_id")
    try:
        event = EVENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or kind
        raise ValueError(f"invalid {kind} event: {where}: {first['msg']}") from None
    found = problem(event, now=time.time() if now is None else now)
    if found is not None:
        raise ValueError(f"implausible {kind} event: {found}")
    return event


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read_batch(
    handle: IO[bytes], line_number: int, batch_size: int, now: float
) -> tuple[list[Event], int]:
    """Up to ``batch_size`` events from the lines after ``line_number`` (checked already);
    returns the events and the number of the last line read."""
    events: list[Event] = []
    while len(events) < batch_size:
        line = handle.readline()
        if not line:
            break
        line_number += 1
        if line.strip():
            events.append(parse_line(line, now=now))
    return events, line_number


def _refusal(path: Path, problems: list[tuple[int, str]]) -> str:
    count = len(problems)
    lines = [
        f"{path}: nothing imported: {count} line{'s' if count > 1 else ''} not a valid event"
        + (" (each listed below)" if count <= MAX_LISTED_PROBLEMS else "")
    ]
    lines += [f"  {path}:{number}: {reason}" for number, reason in problems[:MAX_LISTED_PROBLEMS]]
    if count > MAX_LISTED_PROBLEMS:
        lines.append(f"  ... and {count - MAX_LISTED_PROBLEMS} more")
    return "\n".join(lines)


def _from_reference(data: dict[str, Any]) -> dict[str, Any]:
    """A reference-design event as the fields of the Helios event (validated later)."""
    kind = data["event"]
    task_id = data.get("task_id")
    common: dict[str, Any] = {
        "type": kind,
        "version": SCHEMA_VERSION,
        "task_id": str(task_id) if isinstance(task_id, int) else task_id,
        "timestamp": _epoch(data.get("timestamp")),
    }
    mapper = _MAPPERS.get(kind)
    if mapper is not None:
        return common | mapper(data)
    rest = {
        (key[: -len("_sec")] + "_s" if key.endswith("_sec") else key): value
        for key, value in data.items()
        if key not in ("event", "task_id", "timestamp", "version")
    }
    return common | rest


def _persona_llm_run(data: dict[str, Any]) -> dict[str, Any]:
    persona = data.get("persona", "unknown")
    duration = data.get("duration_sec", 0.0)
    ttft = data.get("ttft_sec")
    if ttft is None:
        ttft = duration  # no stream: the first token arrives with the whole reply
    return {
        "persona": persona,
        "stage": data.get("stage", persona),
        "pass_number": data.get("pass_number", data.get("pass", 1)),
        "provider": data.get("provider", "unknown"),
        "model": data.get("model", "unknown"),
        "streaming": data.get("streaming", False),
        "ttft_s": ttft,
        "duration_s": duration,
        "perceived_improvement": _perceived_improvement(ttft, duration),
        "input_tokens": data.get("tokens_in", data.get("input_tokens", 0)),
        "output_tokens": data.get("tokens_out", data.get("output_tokens", 0)),
        "cache_read_tokens": data.get("cache_read_tokens", 0),
        "cache_write_tokens": data.get("cache_write_tokens", 0),
        "cost_usd": data.get("cost", data.get("cost_usd")),
        "cache_layer": data.get("cache_layer"),
    }


def _task_started(data: dict[str, Any]) -> dict[str, Any]:
    flags = dict(data["flags"]) if isinstance(data.get("flags"), dict) else {}
    for key, value in data.items():
        if key not in _TASK_STARTED_FIELDS and isinstance(value, bool):
            flags.setdefault(key, value)
    return {
        "goal": data.get("goal", ""),
        "kind": data.get("kind", "dialectic"),
        "documents": data.get("documents", 0),
        "flags": flags,
    }


def _task_finished(data: dict[str, Any]) -> dict[str, Any]:
    if "success" in data:
        success = data["success"]
    elif "status" in data:
        success = str(data["status"]).lower() in _OK_STATUSES
    else:
        success = not data.get("error")
    return {
        "success": success,
        "duration_s": data.get("duration_sec", data.get("duration_s", 0.0)),
        "accepted_pass": data.get("accepted_pass"),
        "passes": data.get("passes", 0),
        "cost_usd": data.get("cost", data.get("cost_usd", 0.0)),
        "input_tokens": data.get("tokens_in", data.get("input_tokens", 0)),
        "output_tokens": data.get("tokens_out", data.get("output_tokens", 0)),
    }


def _async_fallback(data: dict[str, Any]) -> dict[str, Any]:
    return {"reason": data.get("reason", data.get("error", "unknown"))}


def _error(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": data.get("kind", data.get("error_type", "error")),
        "message": data.get("message", data.get("error", "")),
        "stage": data.get("stage", data.get("persona")),
    }


_MAPPERS = {
    "persona_llm_run": _persona_llm_run,
    "task_started": _task_started,
    "task_finished": _task_finished,
    "async_fallback": _async_fallback,
    "error": _error,
}


def _perceived_improvement(ttft: Any, duration: Any) -> float:
    try:
        ttft_s, duration_s = float(ttft), float(duration)
    except (TypeError, ValueError):
        return 0.0  # validation of ttft_s / duration_s reports the bad value
    return 1.0 - ttft_s / duration_s if duration_s > 0 else 0.0


def _epoch(value: Any) -> float:
    if value is None:
        return time.time()
    if isinstance(value, bool):
        raise ValueError(f"timestamp {value!r} is neither ISO 8601 nor epoch seconds")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"timestamp {value!r} is neither ISO 8601 nor epoch seconds") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # the reference design wrote UTC
        return moment.timestamp()
    raise ValueError(f"timestamp {value!r} is neither ISO 8601 nor epoch seconds")
