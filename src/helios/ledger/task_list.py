"""One page of the task list: tasks by start time, newest first, filtered and counted.

The dashboard lists tasks from ledgers of a hundred thousand tasks and more, so the SQL
stores answer it with one indexed query (``task_started`` rows by ``(type, timestamp)``,
each joined to its ``task_finished`` row through the task-id index) and decode only the
rows of the page; :func:`page_from_events` is the same selection over events in memory,
for the stores that have no SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from helios.ledger.events import Event, TaskFinished, TaskStarted

TaskStatus = Literal["running", "succeeded", "failed", "accepted", "rejected"]
"""``accepted``: finished with an answer that passed the quality gate; ``rejected``:
finished without one (a failure, or every pass turned down)."""
TASK_STATUSES: tuple[TaskStatus, ...] = ("running", "succeeded", "failed", "accepted", "rejected")


@dataclass(frozen=True, slots=True)
class TaskListQuery:
    """Which tasks, which page; every filter narrows, ``None`` means any."""

    status: TaskStatus | None = None
    since: float | None = None
    """Started at or after (seconds since the epoch)."""
    until: float | None = None
    """Started before."""
    text: str | None = None
    """Found in the task id or the goal, case-insensitively."""
    offset: int = 0
    limit: int = 50


@dataclass(frozen=True, slots=True)
class TaskRow:
    started: TaskStarted
    finished: TaskFinished | None

    @property
    def task_id(self) -> str:
        return self.started.task_id


@dataclass(frozen=True, slots=True)
class TaskPage:
    rows: list[TaskRow]
    total: int
    """How many tasks match the filters (on every page)."""


def task_list_sql(
    query: TaskListQuery, dialect: Literal["sqlite", "postgres"]
) -> tuple[str, str, list[Any]]:
    """``(select, count, params)``: the page's rows ``(start body, finish body or NULL)``
    and the number of matching tasks; ``select`` takes two more parameters, limit and
    offset.

    A task's finish is its latest ``task_finished`` event, found through the
    ``(task_id, type, id)`` index by a subquery that runs only for the rows listed (and,
    with a status filter, for the rows that filter looks at), never by joining every task.
    """
    mark = "?" if dialect == "sqlite" else "%s"
    clauses = ["s.type = 'task_started'"]
    params: list[Any] = []
    if query.since is not None:
        clauses.append(f"s.timestamp >= {mark}")
        params.append(query.since)
    if query.until is not None:
        clauses.append(f"s.timestamp < {mark}")
        params.append(query.until)
    if query.text:
        pattern = "%" + _escape_like(query.text) + "%"
        if dialect == "sqlite":
            goal = "json_extract(s.body, '$.goal')"
            clauses.append(f"(s.task_id LIKE {mark} ESCAPE '\\' OR {goal} LIKE {mark} ESCAPE '\\')")
        else:
            goal = "(s.body->>'goal')"
            clauses.append(f"(s.task_id ILIKE {mark} OR {goal} ILIKE {mark})")
        params.extend([pattern, pattern])
    if query.status is not None:
        clauses.append(_status_clause(query.status, dialect))
    where = " AND ".join(clauses)
    body = "s.body" if dialect == "sqlite" else "s.body::text"
    select = (
        f"SELECT {body}, {_last_finish('text', dialect)} FROM events s WHERE {where}"
        f" ORDER BY s.timestamp DESC, s.id DESC LIMIT {mark} OFFSET {mark}"
    )
    count = f"SELECT COUNT(*) FROM events s WHERE {where}"
    return select, count, params


def _last_finish(form: Literal["text", "json"], dialect: Literal["sqlite", "postgres"]) -> str:
    """The body of the task's latest ``task_finished`` event (NULL: none yet)."""
    body = "f.body::text" if dialect == "postgres" and form == "text" else "f.body"
    return (
        f"(SELECT {body} FROM events f WHERE f.task_id = s.task_id"
        " AND f.type = 'task_finished' ORDER BY f.id DESC LIMIT 1)"
    )


def _status_clause(status: TaskStatus, dialect: Literal["sqlite", "postgres"]) -> str:
    finish = _last_finish("json", dialect)
    if dialect == "sqlite":
        success = f"json_extract({finish}, '$.success')"
        accepted = f"json_extract({finish}, '$.accepted_pass') IS NOT NULL"
        true, false = f"{success} = 1", f"{success} = 0"
    else:
        accepted = f"({finish})->>'accepted_pass' IS NOT NULL"
        true = f"(({finish})->>'success')::boolean"
        false = f"NOT (({finish})->>'success')::boolean"
    return {
        "running": f"{finish} IS NULL",
        "succeeded": true,
        "failed": false,
        "accepted": accepted,
        "rejected": f"{finish} IS NOT NULL AND NOT ({accepted})",
    }[status]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def matches(row: TaskRow, query: TaskListQuery) -> bool:
    """Whether ``row`` is selected by ``query``'s filters (the SQL's rules, in Python)."""
    started, finished = row.started, row.finished
    if query.since is not None and not started.timestamp >= query.since:
        return False
    if query.until is not None and not started.timestamp < query.until:
        return False
    if query.text:
        needle = query.text.casefold()
        if needle not in started.task_id.casefold() and needle not in started.goal.casefold():
            return False
    if query.status is None:
        return True
    if query.status == "running":
        return finished is None
    if finished is None:
        return False
    return {
        "succeeded": finished.success,
        "failed": not finished.success,
        "accepted": finished.accepted_pass is not None,
        "rejected": finished.accepted_pass is None,
    }[query.status]


def page_from_events(events: Iterable[Event], query: TaskListQuery) -> TaskPage:
    """The page ``query`` selects from ``events`` (in append order)."""
    starts: dict[str, tuple[int, TaskStarted]] = {}
    finishes: dict[str, TaskFinished] = {}
    for position, event in enumerate(events):
        if isinstance(event, TaskStarted):
            starts[event.task_id] = (position, event)
        elif isinstance(event, TaskFinished):
            finishes[event.task_id] = event
    ordered = sorted(starts.values(), key=lambda item: (item[1].timestamp, item[0]), reverse=True)
    rows = [TaskRow(started, finishes.get(started.task_id)) for _, started in ordered]
    selected = [row for row in rows if matches(row, query)]
    end = query.offset + max(query.limit, 0)
    return TaskPage(selected[query.offset : end], len(selected))
