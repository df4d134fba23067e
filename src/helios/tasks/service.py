"""Tasks as the API and the CLI see them: submit, look up, list, cancel, follow.

Everything goes through DBOS's public API; a task's id is its workflow id. A task belongs to
the tenant that submitted it (a workflow attribute, and its id's prefix): another tenant
neither sees nor cancels it. An idempotency key makes the id (a digest of tenant and key),
so a second submission with the same key returns the first task, however long ago it ran;
the same key with another body is a conflict.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from dbos import DBOS, SetEnqueueOptions, SetWorkflowAttributes, SetWorkflowID, WorkflowStatus

from helios.errors import TaskError
from helios.ledger.events import TaskCancellation, TaskQueued
from helios.ledger.sink import EventSink
from helios.tasks.spec import TaskSpec
from helios.tasks.workflow import STREAM_KEY, WORKFLOW_NAME, run_task

STATUSES = {
    "ENQUEUED": "queued",
    "DELAYED": "queued",
    "PENDING": "running",
    "SUCCESS": "succeeded",
    "ERROR": "failed",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "failed",
    "CANCELLED": "cancelled",
}
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
BY_STATUS = {
    "queued": ["ENQUEUED", "DELAYED"],
    "running": ["PENDING"],
    "succeeded": ["SUCCESS"],
    "failed": ["ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"],
    "cancelled": ["CANCELLED"],
}


class TaskNotFound(TaskError):
    """No task of this id belongs to the caller's tenant."""


class TaskConflict(TaskError):
    """The request contradicts the task's state (an idempotency key reused with another
    body, cancelling a finished task)."""


@dataclass(frozen=True, slots=True)
class Submitted:
    task_id: str
    existing: bool
    status: str


class TaskService:
    """Submit and inspect tasks; ``sink`` records ``task_queued`` and ``task_cancelled``."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink

    async def submit(self, spec: TaskSpec, *, idempotency_key: str | None = None) -> Submitted:
        digest = spec.digest()
        if idempotency_key is None:
            task_id = _tenant_prefix(spec.tenant) + uuid.uuid4().hex
        else:
            task_id = _keyed_id(spec.tenant, idempotency_key)
            earlier = await DBOS.get_workflow_status_async(task_id)
            if earlier is not None:
                return self._same_task(earlier, digest)
        attributes = {"tenant": spec.tenant, "kind": spec.kind, "digest": digest}
        with (
            SetWorkflowID(task_id),
            SetWorkflowAttributes(attributes),
            SetEnqueueOptions(priority=spec.priority),
        ):
            handle = await DBOS.enqueue_workflow_async(
                spec.queue, run_task, spec.model_dump(mode="json")
            )
        if idempotency_key is not None:
            status = await handle.get_status()
            if (status.attributes or {}).get("digest") != digest:  # a concurrent twin won
                return self._same_task(status, digest)
        self.sink.emit(
            TaskQueued(
                task_id=task_id,
                kind=spec.kind,
                goal=spec.goal,
                queue=spec.queue,
                priority=spec.priority,
                tenant=spec.tenant,
                key_id=spec.key_id,
                documents=len(spec.documents),
            )
        )
        return Submitted(task_id, existing=False, status="queued")

    def _same_task(self, earlier: WorkflowStatus, digest: str) -> Submitted:
        if (earlier.attributes or {}).get("digest") != digest:
            raise TaskConflict(
                "idempotency_key: already used for another task (a different body); use a"
                " new key for a new task"
            )
        return Submitted(earlier.workflow_id, existing=True, status=_status(earlier))

    async def status(self, task_id: str, tenant: str | None) -> WorkflowStatus:
        """The task's DBOS status; ``tenant`` None: any tenant's (an admin)."""
        status = await DBOS.get_workflow_status_async(task_id)
        if status is None or status.name != WORKFLOW_NAME or not _visible(status, tenant):
            raise TaskNotFound(f"no task '{task_id}'")
        return status

    async def describe(self, task_id: str, tenant: str | None) -> dict[str, Any]:
        status = await self.status(task_id, tenant)
        steps = await DBOS.list_workflow_steps_async(task_id)
        return task_view(status, steps)

    async def list_tasks(
        self, tenant: str | None, *, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        found = await DBOS.list_workflows_async(
            name=WORKFLOW_NAME,
            status=BY_STATUS[status] if status else None,
            workflow_id_prefix=_tenant_prefix(tenant) if tenant is not None else None,
            limit=limit,
            sort_desc=True,
            load_input=True,
            load_output=False,
        )
        return [task_view(item, None) for item in found]

    async def cancel(self, task_id: str, tenant: str | None, *, key_id: str | None) -> str:
        status = await self.status(task_id, tenant)
        before = _status(status)
        if before in FINISHED:
            raise TaskConflict(f"task '{task_id}' is already {before}")
        await DBOS.cancel_workflow_async(task_id)
        self.sink.emit(
            TaskCancellation(
                task_id=task_id,
                status_before=before,
                tenant=(status.attributes or {}).get("tenant", "default"),
                key_id=key_id,
            )
        )
        return before

    async def events(
        self, task_id: str, *, offset: int = 0, poll_s: float | None = None
    ) -> AsyncGenerator[tuple[int, list[dict[str, Any]]], None]:
        """The task's stream from ``offset``: (offset, items) until the task ends."""
        position = offset
        async for batch in DBOS.read_stream_async(
            task_id, STREAM_KEY, offset=offset, polling_interval_sec=poll_s
        ):
            yield position, batch
            position += 1


def _tenant_prefix(tenant: str) -> str:
    """Task ids start with their tenant's digest: listing a tenant's tasks is then a prefix
    query, which DBOS answers on SQLite too (its attribute filters need PostgreSQL)."""
    return "t" + hashlib.sha256(tenant.encode()).hexdigest()[:8] + "-"


def _keyed_id(tenant: str, key: str) -> str:
    return (
        _tenant_prefix(tenant)
        + "k"
        + hashlib.sha256(f"{tenant}\x00{key}".encode()).hexdigest()[:31]
    )


def _visible(status: WorkflowStatus, tenant: str | None) -> bool:
    if tenant is None:
        return True
    owner = (status.attributes or {}).get("tenant")
    return owner == tenant and status.workflow_id.startswith(_tenant_prefix(tenant))


def _status(status: WorkflowStatus) -> str:
    return STATUSES.get(status.status, status.status.lower())


def task_view(status: WorkflowStatus, steps: list[Any] | None) -> dict[str, Any]:
    """A task as the API shows it: status, what it asked, its stages, result and cost."""
    spec = _spec_of(status)
    state = _status(status)
    view: dict[str, Any] = {
        "id": status.workflow_id,
        "status": state,
        "kind": spec.get("kind"),
        "goal": spec.get("goal"),
        "model": spec.get("model"),
        "priority": status.priority,
        "queue": status.queue_name,
        "tenant": (status.attributes or {}).get("tenant"),
        "executor": status.executor_id,
        "created_at": _seconds(status.created_at),
        "started_at": _seconds(status.dequeued_at),
        "updated_at": _seconds(status.updated_at),
        "recovery_attempts": getattr(status, "recovery_attempts", None),
    }
    if steps is not None:
        stages = [_stage(step) for step in steps if _is_call(step)]
        view["stages"] = stages
        costs = [stage["cost_usd"] for stage in stages if stage.get("cost_usd") is not None]
        view["cost_usd"] = round(sum(costs), 8) if costs else None
        if state == "succeeded":
            view["result"] = status.output
        if state == "failed" and status.error is not None:
            view["error"] = f"{type(status.error).__name__}: {status.error}"
    return view


def _spec_of(status: WorkflowStatus) -> dict[str, Any]:
    inputs: dict[str, Any] = dict(status.input or {})
    args = inputs.get("args") or ()
    first = args[0] if args else None
    return first if isinstance(first, dict) else {}


def _is_call(step: dict[str, Any]) -> bool:
    name = str(step.get("function_name", ""))
    return not name.startswith(("publish:", "finish", "DBOS.")) and ":" in name


def _stage(step: dict[str, Any]) -> dict[str, Any]:
    name = str(step["function_name"])
    stage = name.partition(":")[0]
    output = step.get("output")
    record: dict[str, Any] = {
        "name": name,
        "stage": stage,
        "started_at": _seconds(step.get("started_at_epoch_ms")),
        "finished_at": _seconds(step.get("completed_at_epoch_ms")),
        "error": str(step["error"]) if step.get("error") is not None else None,
    }
    cost = getattr(output, "cost_usd", None)
    if output is not None and hasattr(output, "usage"):
        record.update(
            model=f"{output.provider}:{output.model}",
            cache=output.cache_layer,
            input_tokens=output.usage.input_tokens,
            output_tokens=output.usage.output_tokens,
            cost_usd=cost,
            ttft_s=round(output.ttft_s, 4),
            duration_s=round(output.duration_s, 4),
        )
    return record


def _seconds(epoch_ms: int | None) -> float | None:
    return epoch_ms / 1000 if epoch_ms is not None else None
