"""Tasks through :class:`TaskService` on a real DBOS (SQLite), in process: results and their
stream, cancellation, priorities, idempotency keys, tenants and the checks on submissions."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helios.ledger.events import TaskStarted
from helios.ledger.store import EventQuery
from helios.messages import Request
from helios.providers.function import FunctionProvider
from helios.runtime import Runtime
from helios.tasks.host import TaskHost
from helios.tasks.service import TaskConflict, TaskNotFound, TaskService
from helios.tasks.spec import InlineDocument, TaskInputError, TaskRequest, TaskSpec, check_request

from .conftest import replies, task_settings


def spec_for(host: TaskHost, tenant: str = "default", **fields: Any) -> TaskSpec:
    request = TaskRequest(**{"goal": "Should we split the monolith?", **fields})
    return check_request(request, host.runtime.settings, tenant=tenant, key_id=None, admin=False)


async def stream_of(
    service: TaskService, task_id: str, offset: int = 0
) -> list[tuple[int, dict[str, Any]]]:
    return [
        (position, item)
        async for position, batch in service.events(task_id, offset=offset, poll_s=0.01)
        for item in batch
    ]


async def finished(service: TaskService, task_id: str, tenant: str = "default") -> dict[str, Any]:
    for _ in range(500):
        view = await service.describe(task_id, tenant)
        if view["status"] in {"succeeded", "failed", "cancelled"}:
            return view
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} did not finish")


async def test_a_dialectic_task_runs_to_its_result_and_streams_its_stages(host: TaskHost) -> None:
    service = TaskService(host.runtime.sink)
    text = "Deploy independence matters.\n" * 5
    spec = spec_for(host, documents=[InlineDocument(name="notes.md", text=text)])
    submitted = await service.submit(spec)
    items = [item for _, item in await stream_of(service, submitted.task_id)]
    kinds = [item["type"] for item in items]
    assert kinds[-1] == "result", kinds
    assert {"stage", "chunk", "stage_done", "gate", "evidence"} <= set(kinds)
    text_of = "".join(
        i["text"] for i in items if i["type"] == "chunk" and i["stage"] == "synthesis"
    )
    assert text_of.startswith("Start with a modular monolith")
    view = await service.describe(submitted.task_id, "default")
    assert view["status"] == "succeeded"
    assert view["result"]["answer"].startswith("Start with a modular monolith")
    assert [s["stage"] for s in view["stages"]] == ["thesis", "antithesis", "synthesis", "judge"]


async def test_a_follower_resuming_from_an_offset_misses_nothing_and_sees_nothing_twice(
    host: TaskHost,
) -> None:
    service = TaskService(host.runtime.sink)
    submitted = await service.submit(spec_for(host))
    whole = await stream_of(service, submitted.task_id)
    cut = whole[len(whole) // 2][0]
    resumed = await stream_of(service, submitted.task_id, offset=cut)
    assert resumed == [entry for entry in whole if entry[0] >= cut]


async def test_an_ask_task_answers_and_is_recorded_in_the_ledger(host: TaskHost) -> None:
    service = TaskService(host.runtime.sink)
    submitted = await service.submit(spec_for(host, kind="ask", goal="Capital of Japan?"))
    view = await finished(service, submitted.task_id)
    assert view["status"] == "succeeded" and view["result"]["answer"] == "Tokyo."
    await host.runtime.flush()
    assert host.runtime.store is not None
    events = await host.runtime.store.query(EventQuery(task_ids=[submitted.task_id]))
    types = [event.type for event in events]
    assert types[0] == "task_queued" and types.count("task_finished") == 1
    assert "persona_llm_run" in types
    started = next(event for event in events if isinstance(event, TaskStarted))
    assert started.queue_wait_s is not None and started.queue_wait_s >= 0


async def test_an_idempotency_key_returns_the_first_task_and_refuses_another_body(
    host: TaskHost,
) -> None:
    service = TaskService(host.runtime.sink)
    first = await service.submit(spec_for(host, kind="ask"), idempotency_key="order-17")
    again = await service.submit(spec_for(host, kind="ask"), idempotency_key="order-17")
    assert again.task_id == first.task_id and again.existing and not first.existing
    with pytest.raises(TaskConflict, match="idempotency_key"):
        await service.submit(spec_for(host, kind="ask", goal="Other?"), idempotency_key="order-17")
    other_tenant = await service.submit(
        spec_for(host, tenant="acme", kind="ask"), idempotency_key="order-17"
    )
    assert other_tenant.task_id != first.task_id


async def test_a_tenant_neither_sees_nor_cancels_another_tenants_task(host: TaskHost) -> None:
    service = TaskService(host.runtime.sink)
    mine = await service.submit(spec_for(host, tenant="acme", kind="ask"))
    with pytest.raises(TaskNotFound):
        await service.describe(mine.task_id, "globex")
    with pytest.raises(TaskNotFound):
        await service.cancel(mine.task_id, "globex", key_id=None)
    await finished(service, mine.task_id, "acme")
    assert [t["id"] for t in await service.list_tasks("acme")] == [mine.task_id]
    assert await service.list_tasks("globex") == []
    assert mine.task_id in [t["id"] for t in await service.list_tasks(None)]  # an admin


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"goal": "  "}, "goal"),
        ({"kind": "dag"}, "dag"),
        ({"kind": "ask", "documents": [{"name": "a.md", "text": "x"}]}, "documents"),
        ({"flags": {"cache.enabled": False}}, "flags.cache.enabled"),
        ({"flags": {"orchestration.max_passes": "many"}}, "flags"),
        ({"paths": ["/etc/passwd"]}, "paths"),
        ({"documents": [{"name": "a.md", "text": "a\x00b"}]}, "documents[0].text"),
        ({"kind": "dag", "dag": {"tasks": [{"id": "a", "persona": "nobody"}]}}, "dag"),
    ],
)
async def test_a_malformed_submission_is_refused_naming_its_field(
    host: TaskHost, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(TaskInputError) as refused:
        spec_for(host, **fields)
    assert refused.value.field == field


async def test_documents_above_the_limit_are_refused(host: TaskHost) -> None:
    settings = host.runtime.settings
    tasks = settings.tasks.model_copy(update={"max_task_bytes": 100})
    small = settings.model_copy(update={"tasks": tasks})
    request = TaskRequest(goal="g", documents=[InlineDocument(name="a.md", text="x" * 101)])
    with pytest.raises(TaskInputError, match="exceed 100 bytes"):
        check_request(request, small, tenant="default", key_id=None, admin=False)


async def test_a_cancelled_task_stops_its_running_call_within_a_second(
    tmp_path: Path, make_provider: Callable[..., FunctionProvider]
) -> None:
    started = asyncio.Event()

    async def slow(request: Request) -> str:
        if request.context.stage == "thesis":
            started.set()
            await asyncio.sleep(30)
        return replies(request)

    async with (
        Runtime.open(task_settings(tmp_path), providers=[make_provider(slow)]) as runtime,
        TaskHost.open(runtime, executor_id=f"t-{uuid.uuid4().hex[:6]}") as host,
    ):
        service = TaskService(runtime.sink)
        submitted = await service.submit(spec_for(host))
        await asyncio.wait_for(started.wait(), 10)
        asked = time.monotonic()
        assert await service.cancel(submitted.task_id, "default", key_id=None) == "running"
        items = [item for _, item in await stream_of(service, submitted.task_id)]
        stopped = time.monotonic() - asked
        view = await finished(service, submitted.task_id)
        assert view["status"] == "cancelled"
        assert stopped < 5  # the stream ends once the workflow is over (bound, not a timing)
        with pytest.raises(TaskConflict, match="already cancelled"):
            await service.cancel(submitted.task_id, "default", key_id=None)
        types = await ledger_types_once_finished(runtime, submitted.task_id)
        assert "task_cancelled" in types and types.count("task_finished") == 1
        assert "error" in types
        assert [i["type"] for i in items].count("result") == 0


async def test_priorities_order_a_backlog(
    tmp_path: Path, make_provider: Callable[..., FunctionProvider]
) -> None:
    order: list[str] = []

    def record(request: Request) -> str:
        order.append(str(request.messages[-1].content))
        return "ok"

    settings = task_settings(tmp_path, worker_concurrency=1)
    async with Runtime.open(settings, providers=[make_provider(record)]) as runtime:
        service = TaskService(runtime.sink)
        # queued while no worker listens: a backlog
        async with TaskHost.open(runtime, worker=False, executor_id="api"):
            ids = [
                (
                    await service.submit(spec_for_settings(settings, goal=f"p{p}-{n}", priority=p))
                ).task_id
                for n, p in enumerate([5, 9, 1, 5, 1])
            ]
        async with TaskHost.open(runtime, executor_id=f"w-{uuid.uuid4().hex[:6]}"):
            for task_id in ids:
                await finished(service, task_id)
    assert order == ["p1-2", "p1-4", "p5-0", "p5-3", "p9-1"]


async def ledger_types_once_finished(runtime: Runtime, task_id: str) -> list[str]:
    """The task's event types once its ``task_finished`` is recorded (a cancelled task's
    workflow records its end just after DBOS has marked it cancelled)."""
    assert runtime.store is not None
    for _ in range(250):
        await runtime.flush()
        types = [e.type for e in await runtime.store.query(EventQuery(task_ids=[task_id]))]
        if "task_finished" in types:
            return types
        await asyncio.sleep(0.02)
    return types


def spec_for_settings(settings: Any, **fields: Any) -> TaskSpec:
    request = TaskRequest(**{"kind": "ask", **fields})
    return check_request(request, settings, tenant="default", key_id=None, admin=False)


async def test_a_dag_task_runs_its_nodes_as_steps(host: TaskHost) -> None:
    service = TaskService(host.runtime.sink)
    dag = {
        "name": "review",
        "tasks": [
            {"id": "draft", "persona": "thesis", "prompt": "Argue for {goal}"},
            {"id": "critique", "persona": "antithesis", "depends_on": ["draft"],
             "prompt": "Critique:\n{draft}"},
        ],
    }  # fmt: skip
    submitted = await service.submit(spec_for(host, kind="dag", goal="a modular monolith", dag=dag))
    view = await finished(service, submitted.task_id)
    assert view["status"] == "succeeded", view
    assert [s["name"] for s in view["stages"]] == ["node:draft", "node:critique"]
    outputs = {task["id"]: task["output"] for task in view["result"]["tasks"]}
    assert outputs == {"draft": "ok", "critique": "ok"}
