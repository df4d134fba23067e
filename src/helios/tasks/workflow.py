"""The task workflow: one DBOS workflow runs a dialectic, a DAG or an ask, durably.

DBOS finds a workflow by its registered name when it recovers one, so the function must be
registered at import, before DBOS launches: the one module-level registration in Helios.
The parts it runs with (the runtime: engine, cache, ledger) belong to the process that
launched DBOS (:mod:`helios.tasks.host`), which installs itself here while it runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from dbos import DBOS

from helios.errors import TaskError
from helios.ledger.events import TaskFinished, TaskRecovered, TaskStarted
from helios.messages import CallContext, Completion, Request
from helios.pipeline.dag import parse_dag
from helios.pipeline.dag_runner import EngineTaskRunner
from helios.pipeline.dialectic import DialecticPipeline
from helios.pipeline.documents import Document
from helios.pipeline.runner import build_gatherer
from helios.pipeline.scheduler import DagScheduler
from helios.runtime import Runtime
from helios.tasks.output import TaskOutput
from helios.tasks.spec import TaskSpec, with_flags
from helios.tasks.steps import DurableCalls, outside_workflow

WORKFLOW_NAME = "helios_task"
STREAM_KEY = "events"


class TaskHostUnavailable(TaskError):
    """A task reached a process whose task host is closed (it is shutting down)."""


class TaskHostView(Protocol):
    """What the workflow needs of the process's task host (:class:`~helios.tasks.host.TaskHost`)."""

    @property
    def runtime(self) -> Runtime: ...

    @property
    def executor_id(self) -> str: ...


_hosts: list[TaskHostView] = []
"""The process's open task host (at most one: DBOS is one per process)."""


def install_host(host: TaskHostView) -> None:
    _hosts.append(host)


def remove_host(host: TaskHostView) -> None:
    if host in _hosts:
        _hosts.remove(host)


def current_hosts() -> tuple[TaskHostView, ...]:
    return tuple(_hosts)


def current_host() -> TaskHostView:
    if not _hosts:
        raise TaskHostUnavailable("this process runs no task host")
    return _hosts[-1]


@DBOS.workflow(name=WORKFLOW_NAME)
async def run_task(spec_data: dict[str, Any]) -> dict[str, Any]:
    host = current_host()
    spec = TaskSpec.model_validate(spec_data)
    task_id = DBOS.workflow_id
    assert task_id is not None
    runtime = host.runtime
    output = TaskOutput(
        task_id,
        runtime.sink,
        _writer(),
        runtime.flush,
        chunk_flush_s=runtime.settings.tasks.chunk_flush_s,
        queue_wait_s=time.time() - spec.submitted_at if spec.submitted_at else None,
    )
    calls = DurableCalls(output, cancel_poll_s=runtime.settings.tasks.cancel_poll_s)
    await _announce_attempt(task_id, host, output)
    context = CallContext(task_id=task_id, tenant=spec.tenant, key_id=spec.key_id)
    try:
        result = await _RUNNERS[spec.kind](spec, runtime, output, calls, context)
    except asyncio.CancelledError:
        # The process is stopping (DBOS cancels what runs): the task is not over, another
        # attempt will run it, so its end must not be recorded now.
        raise
    except BaseException:
        await output.publish_directly()
        raise
    events, items = output.take_held()
    items.append({"type": "result", "at": time.time(), "result": result})

    async def finish() -> int:
        return await output.publish((events, items))

    await DBOS.run_step_async({"name": "finish"}, finish)
    return result


def _writer() -> Callable[[list[dict[str, Any]]], Awaitable[None]]:
    async def write(items: list[dict[str, Any]]) -> None:
        await DBOS.write_stream_async(STREAM_KEY, items)

    return write


async def _announce_attempt(task_id: str, host: TaskHostView, output: TaskOutput) -> None:
    """A task run again after a crash or a takeover says so: in the ledger, and in its
    stream (a follower then knows why a stage starts over)."""
    status = await outside_workflow(DBOS.get_workflow_status_async(task_id))
    attempts = getattr(status, "recovery_attempts", None) or 1
    if attempts <= 1:
        return
    host.runtime.sink.emit(
        TaskRecovered(task_id=task_id, executor_id=host.executor_id, attempt=int(attempts))
    )
    output.live_note(f"task recovered on {host.executor_id} (attempt {attempts})")


Runner = Callable[
    [TaskSpec, Runtime, TaskOutput, DurableCalls, CallContext], Awaitable[dict[str, Any]]
]


async def _dialectic(
    spec: TaskSpec, runtime: Runtime, output: TaskOutput, calls: DurableCalls, ctx: CallContext
) -> dict[str, Any]:
    settings = with_flags(runtime.settings, spec.flags)
    gatherer = build_gatherer(runtime)
    try:
        pipeline = DialecticPipeline(
            runtime.engine,
            settings,
            gatherer,
            sink=output,
            observer=output,
            model_override=spec.model,
            calls=calls,
        )
        documents = [_document(d.name, d.text) for d in spec.documents]
        result = await pipeline.run(spec.goal, documents, context=ctx)
    finally:
        await gatherer.aclose()
    return result.to_dict()


async def _ask(
    spec: TaskSpec, runtime: Runtime, output: TaskOutput, calls: DurableCalls, ctx: CallContext
) -> dict[str, Any]:
    started = time.perf_counter()
    model = spec.model or runtime.settings.default_model
    output.emit(TaskStarted(task_id=ctx.task_id or "", kind="ask", goal=spec.goal))
    request = Request.of(spec.goal, model=model, context=ctx.model_copy(update={"stage": "ask"}))

    async def call() -> Completion:
        output.stage_started("ask", "ask", 1, model)
        stream = runtime.engine.stream(request, restartable=True)
        async for chunk in stream:
            if chunk.restart is not None:
                output.stage_restarted("ask", chunk.restart)
            elif chunk.text:
                output.chunk("ask", chunk.text)
        assert stream.completion is not None
        return stream.completion

    completion = await calls.run("ask:1:1", call)
    output.emit(
        TaskFinished(
            task_id=ctx.task_id or "",
            success=True,
            duration_s=time.perf_counter() - started,
            cost_usd=completion.cost_usd or 0.0,
            input_tokens=completion.usage.input_tokens,
            output_tokens=completion.usage.output_tokens,
        )
    )
    return {
        "task_id": ctx.task_id,
        "goal": spec.goal,
        "answer": completion.text,
        "model": f"{completion.provider}:{completion.model}",
        "cache": completion.cache_layer,
        "cost_usd": completion.cost_usd,
        "input_tokens": completion.usage.input_tokens,
        "output_tokens": completion.usage.output_tokens,
    }


async def _dag(
    spec: TaskSpec, runtime: Runtime, output: TaskOutput, calls: DurableCalls, ctx: CallContext
) -> dict[str, Any]:
    # One node at a time: a recovered run must meet its steps in the order it made them,
    # which concurrent nodes finishing in another order would not guarantee.
    dag = parse_dag(spec.dag, source="dag").model_copy(update={"concurrency": 1})
    settings = with_flags(runtime.settings, spec.flags)
    inner = EngineTaskRunner(
        runtime.engine,
        settings,
        None,
        lambda: build_gatherer(runtime),
        sink=output,
        model_override=spec.model,
    )
    runner = _DurableNodes(inner, calls, output)
    try:
        scheduler = DagScheduler(runner, sink=output)
        result = await scheduler.run(dag, goal=spec.goal, context=ctx)
    finally:
        await inner.aclose()
    return result.to_dict()


class _DurableNodes:
    """The DAG scheduler's runner: every node's call is a durable step."""

    def __init__(self, inner: EngineTaskRunner, calls: DurableCalls, output: TaskOutput) -> None:
        self.inner, self.calls, self.output = inner, calls, output

    async def run(self, task: Any, prompt: str, context: CallContext) -> str:
        async def node() -> str:
            self.output.stage_started(task.id, task.persona or task.kind, 1, task.model or "")
            text = await self.inner.run(task, prompt, context)
            self.output.chunk(task.id, text)
            return text

        return await self.calls.step(f"node:{task.id}", node)


def _document(name: str, text: str) -> Document:
    digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()
    return Document(path=Path(name), text=text, sha256=digest)


_RUNNERS: dict[str, Runner] = {"dialectic": _dialectic, "ask": _ask, "dag": _dag}
