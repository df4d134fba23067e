"""Persona calls as DBOS steps: a recovered task never runs (or bills) a finished call again.

:class:`DurableCalls` is the dialectic pipeline's ``StageCalls`` inside a workflow. Each call
is two steps: one that publishes what the task held since the previous call (see
:mod:`helios.tasks.output`), then the call itself, which streams its text live and is
recorded with its :class:`~helios.messages.Completion` as the step's output.

A call step is *preemptible*, and also watches its task itself every ``cancel_poll_s``
(DBOS's own watcher polls once a second; a cancelled task should stop sooner). Either way
the step ends with DBOS's cancellation error, which DBOS does not record, so a task that is
resumed later runs that call afresh; the pipeline sees :class:`~helios.errors.TaskCancelled`.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from dbos import DBOS
from dbos._error import DBOSWorkflowCancelledError

from helios.errors import TaskCancelled
from helios.messages import Completion
from helios.tasks.output import TaskOutput

T = TypeVar("T")
CANCELLED = "CANCELLED"


class DurableCalls:
    def __init__(self, output: TaskOutput, *, cancel_poll_s: float) -> None:
        self.output = output
        self.cancel_poll_s = cancel_poll_s

    async def run(self, name: str, body: Callable[[], Awaitable[Completion]]) -> Completion:
        return await self.step(name, body)

    async def step(self, name: str, body: Callable[[], Awaitable[T]]) -> T:
        """``body`` as a live, preemptible step named ``name``, after publishing what is held."""
        held = self.output.take_held()
        await DBOS.run_step_async({"name": f"publish:{name}"}, self.output.publish, held)
        workflow_id = DBOS.workflow_id
        assert workflow_id is not None, "durable calls run inside a task's workflow"

        async def live() -> T:
            async with self.output.live_step():
                return await self._until_cancelled(body, workflow_id)

        try:
            return await DBOS.run_step_async(
                {"name": name, "preemptible": True, "retries_allowed": False}, live
            )
        except DBOSWorkflowCancelledError as exc:
            raise TaskCancelled(f"task {workflow_id} was cancelled during {name}") from exc

    async def _until_cancelled(self, body: Callable[[], Awaitable[T]], workflow_id: str) -> T:
        call = asyncio.ensure_future(body())
        try:
            while True:
                done, _ = await asyncio.wait({call}, timeout=self.cancel_poll_s)
                if done:
                    return call.result()
                if await task_status(workflow_id) == CANCELLED:
                    raise DBOSWorkflowCancelledError(f"Workflow {workflow_id} is cancelled")
        finally:
            if not call.done():
                call.cancel()
                await asyncio.wait({call})


async def outside_workflow(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a DBOS call as a plain caller would: called from workflow code, DBOS would
    record it as a step, and a replay would return the first attempt's answer."""
    task: asyncio.Task[T] = contextvars.Context().run(asyncio.create_task, coroutine)
    return await task


async def task_status(workflow_id: str) -> str | None:
    status = await outside_workflow(DBOS.get_workflow_status_async(workflow_id))
    return status.status if status is not None else None
