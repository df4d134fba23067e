"""The task list (``LedgerStore.list_tasks``): the same page from every store, newest first,
each filter narrowing, the count covering every page."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from helios.ledger.events import Event, GateVerdict, TaskFinished, TaskStarted
from helios.ledger.task_list import TASK_STATUSES, TaskListQuery, TaskStatus
from tests.ledger.conftest import EPOCH, Ledger

GOALS = ("Summarise the report", "100% coverage_check", "review the PR", "ÉTÉ résumé")


def seeded() -> tuple[list[Event], dict[str, tuple[float, str, TaskStatus | None]]]:
    """30 tasks: running, succeeded (accepted or not) and failed ones, starts out of append
    order. Returns the events and, per task, its start, goal and how it ended."""
    events: list[Event] = []
    truth: dict[str, tuple[float, str, TaskStatus | None]] = {}
    for n in range(30):
        task_id = f"task-{n:02d}"
        start = EPOCH + 1000 + (n * 37) % 30 * 10.0  # a permutation: appended out of order
        goal = GOALS[n % len(GOALS)]
        events.append(TaskStarted(task_id=task_id, goal=goal, timestamp=start))
        outcome = n % 4
        if outcome == 0:
            truth[task_id] = (start, goal, None)
            continue
        accepted = 1 if outcome == 1 else None
        events.append(
            GateVerdict(
                task_id=task_id,
                pass_number=1,
                passed=accepted is not None,
                evidence_ok=True,
                judge_pass=accepted is not None,
                judge_score=0.9 if accepted else 0.2,
                judge_valid=True,
                timestamp=start + 1,
            )
        )
        events.append(
            TaskFinished(
                task_id=task_id,
                success=outcome != 3,
                duration_s=2.0,
                accepted_pass=accepted,
                passes=1,
                timestamp=start + 2,
            )
        )
        truth[task_id] = (start, goal, "accepted" if accepted else "rejected")
    return events, truth


def expected(
    truth: dict[str, tuple[float, str, TaskStatus | None]], query: TaskListQuery
) -> list[str]:
    def status_matches(task_id: str) -> bool:
        _, _, ended = truth[task_id]
        n = int(task_id.split("-")[1])
        if query.status is None:
            return True
        if query.status == "running":
            return ended is None
        if ended is None:
            return False
        return {
            "succeeded": n % 4 in (1, 2),
            "failed": n % 4 == 3,
            "accepted": ended == "accepted",
            "rejected": ended == "rejected",
        }[query.status]

    chosen = [
        task_id
        for task_id, (start, goal, _) in truth.items()
        if status_matches(task_id)
        and (query.since is None or start >= query.since)
        and (query.until is None or start < query.until)
        and (
            not query.text
            or query.text.casefold() in goal.casefold()
            or query.text.casefold() in task_id.casefold()
        )
    ]
    chosen.sort(key=lambda task_id: truth[task_id][0], reverse=True)
    return chosen


@pytest.mark.parametrize(
    ("status", "text", "window"),
    [
        *((status, None, False) for status in (None, *TASK_STATUSES)),
        (None, "report", False),
        (None, "REVIEW", False),
        (None, "100%", False),  # a LIKE wildcard, taken literally
        (None, "_c", False),
        (None, "résumé", False),
        (None, "task-0", False),
        ("accepted", "summarise", True),
        ("running", None, True),
    ],
)
async def test_every_store_pages_and_filters_tasks_alike(
    ledger: Ledger, status: TaskStatus | None, text: str | None, window: bool
) -> None:
    store = ledger.open()
    events, truth = seeded()
    await store.append(events)
    since, until = (EPOCH + 1050, EPOCH + 1200) if window else (None, None)
    base = TaskListQuery(status=status, text=text, since=since, until=until)
    want = expected(truth, base)
    assert want or status == "running" or text is not None  # the seed exercises the filter
    pages = []
    for offset in itertools.count(0, 7):
        page = await store.list_tasks(replace(base, offset=offset, limit=7))
        assert page.total == len(want)
        if not page.rows:
            break
        pages.extend(page.rows)
    assert [row.task_id for row in pages] == want
    for row in pages:
        finished = row.finished
        assert (finished is None) == (truth[row.task_id][2] is None)
        assert row.started.goal == truth[row.task_id][1]


async def test_a_task_finished_twice_is_listed_once_with_its_last_finish(ledger: Ledger) -> None:
    store = ledger.open()
    await store.append(
        [
            TaskStarted(task_id="t", goal="g", timestamp=EPOCH),
            TaskFinished(task_id="t", success=False, duration_s=1, timestamp=EPOCH + 1),
            TaskFinished(task_id="t", success=True, duration_s=2, timestamp=EPOCH + 2),
        ]
    )
    page = await store.list_tasks(TaskListQuery())
    assert page.total == 1 and [row.task_id for row in page.rows] == ["t"]
    assert page.rows[0].finished is not None and page.rows[0].finished.success
