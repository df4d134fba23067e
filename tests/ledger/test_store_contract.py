"""The ledger store contract, run against memory, SQLite and PostgreSQL (see conftest).

Tests that only mean something for a store that persists (reopening, other processes,
rollback of a failed transaction) take ``durable_ledger`` instead of ``ledger``.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helios.errors import LedgerError
from helios.ledger.events import (
    AsyncFallback,
    CacheLookup,
    ErrorEvent,
    Event,
    EvidenceGathered,
    FlagChanged,
    GateVerdict,
    GatewayRequest,
    GovernorDecision,
    PersonaLLMRun,
    RouteDecision,
    SecondPass,
    TaskCancellation,
    TaskFinished,
    TaskQueued,
    TaskRecovered,
    TaskStarted,
)
from helios.ledger.jsonl import HELIOS_TYPES
from helios.ledger.migrations import MIGRATIONS
from helios.ledger.store import EventQuery
from tests.ledger.conftest import EPOCH, POSTGRES_URL_VARIABLE, Ledger, task_events

REPO = Path(__file__).resolve().parents[2]


def one_of_each() -> list[Event]:
    return [
        TaskStarted(task_id="t", goal="Is it?", documents=2, flags={"a": True, "n": 3}),
        EvidenceGathered(
            task_id="t",
            documents=2,
            chunks=9,
            passages=4,
            embedded_chunks=9,
            from_cache=False,
            duration_s=0.25,
        ),
        PersonaLLMRun(
            task_id="t",
            persona="thesis",
            stage="thesis",
            pass_number=2,
            provider="llamacpp",
            model="smollm2",
            streaming=True,
            ttft_s=0.1,
            duration_s=0.4,
            perceived_improvement=0.75,
            input_tokens=10,
            output_tokens=20,
            cache_read_tokens=3,
            cache_write_tokens=4,
            cost_usd=None,
            cost_saved_usd=0.5,
            cache_layer="L2",
        ),
        AsyncFallback(task_id="t", reason="thesis timed out"),
        CacheLookup(task_id="t", persona="thesis", layer="L3", hit=True),
        GateVerdict(
            task_id="t",
            pass_number=1,
            passed=False,
            evidence_ok=False,
            evidence_problems=["E3 missing"],
            judge_pass=False,
            judge_score=0.4,
            judge_valid=True,
            reasons=["thin"],
        ),
        SecondPass(task_id="t", pass_number=2, feedback="cite E3 — and «quote» it"),
        TaskFinished(
            task_id="t",
            success=True,
            duration_s=3.5,
            accepted_pass=2,
            passes=2,
            cost_usd=0.02,
            input_tokens=100,
            output_tokens=200,
        ),
        FlagChanged(flag="async_thesis", old=True, new=None, reason="rollback", actor="monitor"),
        GovernorDecision(
            task_id="t",
            decision="downgrade",
            account="max",
            window="5h",
            details={"used": 0.93, "tier": "fast", "near": True},
        ),
        RouteDecision(task_id="t", persona=None, model="m", tier="fast", score=0.7),
        GatewayRequest(
            task_id="t",
            endpoint="/v1/chat/completions",
            tenant="acme",
            key_id="k1",
            end_user="alice",
            model="auto",
            streaming=True,
            status=429,
            duration_s=0.01,
            error="budget 'key:k1' window '5h' has no room",
        ),
        TaskQueued(task_id="t", kind="ask", goal="Is it?", queue="tasks", priority=3),
        TaskRecovered(task_id="t", executor_id="b", attempt=2, previous_executor_id="a"),
        TaskCancellation(task_id="t", status_before="running", tenant="acme", key_id="k1"),
        ErrorEvent(task_id="t", kind="ProviderUnavailable", message="503 ✗", stage=None),
    ]


async def test_append_and_query_keep_append_order(ledger: Ledger) -> None:
    store = ledger.open()
    first = task_events("a", start=500.0)
    second = task_events("b", start=100.0)  # earlier timestamps, appended later
    await store.append(first)
    await store.append(second)
    await store.append([])
    assert await store.query() == first + second
    assert await store.count() == len(first) + len(second)


async def test_every_event_type_round_trips(ledger: Ledger) -> None:
    events = one_of_each()
    assert {event.type for event in events} == HELIOS_TYPES  # a new type must join here
    store = ledger.open()
    await store.append(events)
    assert await store.query() == events
    assert [type(event) for event in await store.query()] == [type(e) for e in events]


async def test_a_nan_score_round_trips(ledger: Ledger) -> None:
    store = ledger.open()
    verdict = GateVerdict(
        task_id="t",
        pass_number=1,
        passed=True,
        evidence_ok=True,
        judge_pass=True,
        judge_score=float("nan"),
        judge_valid=True,
    )
    await store.append([verdict])
    [read_verdict] = await store.query()
    assert isinstance(read_verdict, GateVerdict) and math.isnan(read_verdict.judge_score)


IMPLAUSIBLE = [
    ("timestamp", {"timestamp": 1_700_000_000_000.0}),  # epoch milliseconds
    ("timestamp", {"timestamp": 1e300}),
    ("timestamp", {"timestamp": math.nan}),
    ("timestamp", {"timestamp": math.inf}),
    ("timestamp", {"timestamp": 12.0}),  # 1970: before 2000
    ("timestamp", {"timestamp": -5.0}),
    ("ttft_s", {"ttft_s": math.inf}),
    ("duration_s", {"duration_s": -0.5}),
    ("cost_usd", {"cost_usd": -math.inf}),
    ("cost_usd", {"cost_usd": -0.01}),
    ("cost_saved_usd", {"cost_saved_usd": math.nan}),
    ("cost_usd", {"cost_usd": math.nan}),
    ("input_tokens", {"input_tokens": -1}),
    ("output_tokens", {"output_tokens": 10**12}),
]


@pytest.mark.parametrize(
    ("field", "update"), IMPLAUSIBLE, ids=[f"{f}={u[f]}" for f, u in IMPLAUSIBLE]
)
async def test_a_batch_with_an_implausible_event_is_refused_whole(
    ledger: Ledger, field: str, update: dict[str, float]
) -> None:
    store = ledger.open()
    good = task_events("good")
    bad = good[1].model_copy(update=update)  # a persona_llm_run
    with pytest.raises(LedgerError, match=rf"persona_llm_run event of task 'good': {field}: "):
        await store.append([good[0], bad, good[-1]])
    assert await store.count() == 0
    await store.append(good)  # the store still takes plausible events
    assert await store.query() == good


async def test_an_event_an_hour_ahead_and_a_negative_saving_are_accepted(
    ledger: Ledger,
) -> None:
    store = ledger.open()
    ahead = TaskStarted(task_id="fast-clock", goal="g", timestamp=time.time() + 3600)
    # a prompt-cache write costs more than the uncached call: a negative saving is real
    write = task_events("fast-clock")[1].model_copy(update={"cost_saved_usd": -0.0008})
    await store.append([ahead, write])
    assert await store.query() == [ahead, write]


async def test_sequences_follow_appends_not_timestamps(ledger: Ledger) -> None:
    store = ledger.open()
    assert await store.last_sequence() == 0
    assert await store.events_after(0) == []
    late, early = task_events("late", start=900.0), task_events("early", start=100.0)
    await store.append(late)
    await store.append(early)
    rows = await store.events_after(0)
    assert [event for _, event in rows] == late + early
    sequences = [sequence for sequence, _ in rows]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    assert await store.last_sequence() == sequences[-1]
    middle = sequences[len(late) - 1]
    assert [event for _, event in await store.events_after(middle)] == early
    assert await store.events_after(middle, limit=2) == rows[len(late) : len(late) + 2]
    assert await store.events_after(sequences[-1]) == []


async def test_last_tasks_ignores_a_start_stamped_far_ahead(ledger: Ledger) -> None:
    store = ledger.open()
    normal = task_events("normal")
    await store.append(normal)
    await ledger.insert_raw(
        TaskStarted(task_id="future", goal="g", timestamp=EPOCH).model_copy(
            update={"timestamp": 1e300}
        )
    )
    assert await store.query(EventQuery(last_tasks=1)) == normal


async def test_filters(ledger: Ledger) -> None:
    store = ledger.open()
    a, b, c = task_events("a", start=100.0), task_events("b", start=200.0), task_events("c")
    await store.append(a + b + c)  # c starts at 1000: the most recent task
    everything = a + b + c

    async def select(**fields: object) -> list[Event]:
        return await store.query(EventQuery(**fields))  # type: ignore[arg-type]

    at = EPOCH + 200.0
    assert await select(since=at) == [e for e in everything if e.timestamp >= at]
    assert await select(until=at) == a  # until is exclusive
    assert await select(since=EPOCH + 101.0, until=EPOCH + 111.0) == a[1:-1]
    assert await select(task_ids=["b", "c"]) == b + c
    assert await select(task_ids=[]) == []
    assert await select(types=["task_started", "task_finished"]) == [
        e for e in everything if e.type in ("task_started", "task_finished")
    ]
    assert await select(types=[]) == []
    assert await select(task_ids=["a"], types=["async_fallback"]) == [a[-2]]
    assert await select(last_tasks=1) == c
    assert await select(last_tasks=2) == b + c
    assert await select(last_tasks=10) == everything
    assert await select(last_tasks=2, types=["task_started"]) == [b[0], c[0]]
    assert await select(last_tasks=2, task_ids=["a", "b"]) == b


async def test_last_tasks_follows_start_time_not_append_order(ledger: Ledger) -> None:
    store = ledger.open()
    late, early = task_events("late", start=900.0), task_events("early", start=100.0)
    await store.append(late)
    await store.append(early)
    assert await store.query(EventQuery(last_tasks=1)) == late


async def test_flag_overrides_set_replace_and_remove(ledger: Ledger) -> None:
    store = ledger.open()
    assert await store.flag_overrides() == {}
    first = await store.set_flag_override("async_thesis", False, actor="ops", reason="noisy")
    await store.set_flag_override("max_passes", 3, actor="ops", reason="quality")
    await store.set_flag_override("judge_floor", 0.5, actor="ops", reason="tune")
    await store.set_flag_override("model", "fast", actor="ops", reason="cost")
    second = await store.set_flag_override("async_thesis", True, actor="monitor", reason="ok")
    overrides = await store.flag_overrides()
    assert overrides == {"async_thesis": True, "max_passes": 3, "judge_floor": 0.5, "model": "fast"}
    # bool stays bool and int stays int (True == 1 in Python, so check the types)
    assert type(overrides["async_thesis"]) is bool and type(overrides["max_passes"]) is int
    removed = await store.set_flag_override("async_thesis", None, actor="ops", reason="default")
    assert "async_thesis" not in await store.flag_overrides()

    assert (first.old, first.new, first.actor, first.reason) == (None, False, "ops", "noisy")
    assert (second.old, second.new) == (False, True)
    assert (removed.old, removed.new) == (True, None)
    changes = await store.query(EventQuery(types=["flag_changed"]))
    assert changes[0] == first and changes[-2:] == [second, removed]
    assert await store.count() == 6


async def test_a_rejected_override_changes_nothing(durable_ledger: Ledger) -> None:
    store = durable_ledger.open()
    await store.set_flag_override("f", True, actor="a", reason="r")
    with pytest.raises(ValueError, match="validation error"):
        await store.set_flag_override("f", [1, 2], actor="a", reason="r")  # type: ignore[arg-type]
    assert await store.flag_overrides() == {"f": True}
    assert await store.count() == 1


async def test_migrations_are_listed_and_idempotent(ledger: Ledger) -> None:
    store = ledger.open()
    expected = [] if ledger.kind == "memory" else [m.name for m in MIGRATIONS]
    assert await store.migrations() == expected
    await store.append(task_events("a"))
    again = ledger.open()
    assert await again.migrations() == expected
    assert await again.count() == len(task_events("a"))


async def test_events_and_overrides_persist_across_reopen(durable_ledger: Ledger) -> None:
    store = durable_ledger.open()
    await store.append(task_events("a"))
    await store.set_flag_override("async_thesis", False, actor="ops", reason="r")
    await store.aclose()
    with pytest.raises(LedgerError, match="closed"):
        await store.count()
    reopened = durable_ledger.open()
    assert await reopened.flag_overrides() == {"async_thesis": False}
    assert await reopened.query(EventQuery(task_ids=["a"])) == task_events("a")
    assert await reopened.count() == len(task_events("a")) + 1


async def test_concurrent_appends_keep_every_batch_whole(ledger: Ledger) -> None:
    store = ledger.open()
    batches = [task_events(f"task-{n}", start=float(n)) for n in range(60)]
    await asyncio.gather(*(store.append(batch) for batch in batches))
    stored = await store.query()
    assert len(stored) == sum(len(batch) for batch in batches) == await store.count()
    assert_batches_contiguous(stored, batches)


def assert_batches_contiguous(stored: list[Event], batches: list[list[Event]]) -> None:
    """Each batch appears whole, in its own order, not interleaved with another."""
    positions = {id(batch): 0 for batch in batches}
    by_task = {batch[0].task_id: batch for batch in batches}
    index = 0
    while index < len(stored):
        batch = by_task[stored[index].task_id]
        assert stored[index : index + len(batch)] == batch
        positions[id(batch)] += 1
        index += len(batch)
    assert all(count == 1 for count in positions.values())


async def test_a_batch_that_fails_midway_stores_nothing(durable_ledger: Ledger) -> None:
    store = durable_ledger.open()
    await store.append(task_events("before"))
    # ``model_construct`` skips validation, as a bug could: the stores encode each row as
    # it goes into the open transaction, so the rows before this one are already written
    # when it fails, and only the rollback keeps them out
    broken = ErrorEvent.model_construct(task_id="t", kind="bug", message=object())  # type: ignore[arg-type]
    batch = [*task_events("doomed")[:3], broken, *task_events("doomed")[3:]]
    with pytest.raises(LedgerError, match="cannot encode error event of task 't'"):
        await store.append(batch)
    assert await store.count() == len(task_events("before"))
    assert await store.query(EventQuery(task_ids=["doomed"])) == []
    await store.append(task_events("after"))  # the store is still usable
    assert await store.count() == 2 * len(task_events("x"))


async def test_two_instances_share_one_ledger(ledger: Ledger) -> None:
    one, two = ledger.open(), ledger.open()
    batches = [task_events(f"task-{n}") for n in range(20)]
    await asyncio.gather(*(s.append(b) for s, b in zip([one, two] * 10, batches, strict=True)))
    await one.set_flag_override("f", 1, actor="a", reason="r")
    assert await two.flag_overrides() == {"f": 1}
    stored = await two.query()
    assert stored == await one.query()
    assert_batches_contiguous(stored[:-1], batches)


async def test_two_processes_open_and_append_concurrently(durable_ledger: Ledger) -> None:
    """Both processes open a new ledger at once (migrations race) and append batches."""
    workers, batches, size = 3, 30, 20
    env = dict(os.environ)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.ledger.append_worker",
            durable_ledger.kind,
            durable_ledger.location,
            f"w{worker}",
            str(batches),
            str(size),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for worker in range(workers)
    ]
    for process in processes:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode == 0, stderr.decode()
    store = durable_ledger.open()
    assert await store.migrations() == [m.name for m in MIGRATIONS]
    stored = await store.query()
    assert len(stored) == workers * batches * size
    for start in range(0, len(stored), size):
        group = stored[start : start + size]
        assert len({event.task_id for event in group}) == 1, "a batch was interleaved"
        assert [int(event.goal) for event in group if isinstance(event, TaskStarted)] == list(
            range(size)
        )


async def test_a_row_from_a_newer_version_is_named(durable_ledger: Ledger) -> None:
    store = durable_ledger.open()
    await store.append(task_events("a"))
    body = '{"version": 2, "type": "quantum_leap", "task_id": "a", "timestamp": 5.0}'
    if durable_ledger.kind == "sqlite":
        assert durable_ledger.path is not None
        row_id = insert_into_sqlite(durable_ledger.path, body)
    else:
        assert durable_ledger.schema is not None
        row_id = await insert_into_postgres(durable_ledger.schema, body)
    with pytest.raises(LedgerError, match=rf"ledger row {row_id} cannot be read"):
        await store.query()
    # the rows around it stay readable when a query leaves it out
    assert await store.query(EventQuery(types=["task_started"])) == task_events("a")[:1]


def insert_into_sqlite(path: Path, body: str) -> int:
    import sqlite3

    with sqlite3.connect(path) as connection:
        cursor = connection.execute(
            "INSERT INTO events (task_id, type, timestamp, version, body)"
            " VALUES ('a', 'quantum_leap', 5.0, 2, ?)",
            (body,),
        )
    connection.close()
    assert cursor.lastrowid is not None
    return cursor.lastrowid


async def insert_into_postgres(schema: str, body: str) -> int:
    import psycopg

    url = os.environ[POSTGRES_URL_VARIABLE]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        cursor = await connection.execute(
            f"INSERT INTO {schema}.events (task_id, type, timestamp, version, body)"
            " VALUES ('a', 'quantum_leap', 5.0, 2, %s) RETURNING id",
            (body,),
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])
