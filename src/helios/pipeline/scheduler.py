"""The DAG scheduler: runs a :class:`~helios.pipeline.dag.Dag` in process with asyncio.

A task becomes ready when all its dependencies succeeded. Ready tasks take the free
concurrency slots in priority order (higher first, then declaration order). Before a slot
is taken, the :class:`Admission` policy (the governor) is asked: a deferred task leaves the
queue for ``eta_s`` and asks again, so it never holds a slot while it waits; a rejected one
fails with the reason. A task's prompt is rendered from ``{goal}`` and its dependencies'
outputs, then handed to the :class:`TaskRunner`; each attempt runs under ``timeout_s`` and a
failure is retried after ``backoff_s * 2 ** (attempt - 1)`` (ConfigError and InputError are
not retried: trying again cannot fix them). A ``dag`` task runs its nested DAG through a
nested scheduler with the same runner and admission; its output is the nested DAG's
:attr:`DagResult.final_output`.

On a failure, ``fail_fast`` cancels the running tasks and skips the rest; ``continue`` runs
what it can and skips the dependents of the failed task. Cancelling :meth:`DagScheduler.run`
cancels every running task before the cancellation propagates.
"""

from __future__ import annotations

import asyncio
import heapq
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from helios.errors import BudgetExceeded, ConfigError, HeliosError, InputError
from helios.ledger.events import CANCELLED, ErrorEvent, TaskFinished, TaskStarted
from helios.ledger.sink import EventSink, FanOut
from helios.messages import CallContext
from helios.pipeline.dag import GOAL, Dag, TaskSpec, render_prompt
from helios.retries import RetryPolicy

TaskStatus = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]


class TaskRunner(Protocol):
    """Runs one task's rendered prompt and returns its output text; ``context`` names the
    DAG run (task id) and the node (stage) its model calls belong to."""

    async def run(self, task: TaskSpec, prompt: str, context: CallContext) -> str: ...


@dataclass(frozen=True, slots=True)
class AdmitDecision:
    action: Literal["allow", "defer", "reject"]
    eta_s: float = 0.0
    reason: str = ""

    @classmethod
    def allow(cls) -> AdmitDecision:
        return cls("allow")

    @classmethod
    def defer(cls, eta_s: float, reason: str = "") -> AdmitDecision:
        return cls("defer", eta_s=max(0.0, eta_s), reason=reason)

    @classmethod
    def reject(cls, reason: str) -> AdmitDecision:
        return cls("reject", reason=reason)

    @classmethod
    def over_budget(cls, exc: BudgetExceeded) -> AdmitDecision:
        """A rejection whose reason is the budget error, with its reset time."""
        reason = str(exc)
        if exc.resets_at is not None and "reset" not in reason:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(exc.resets_at))
            reason += f" (window {exc.window} resets at {stamp})"
        return cls.reject(reason)


class Admission(Protocol):
    """Whether a task may start now. Raising BudgetExceeded counts as a rejection."""

    async def admit(self, task: TaskSpec) -> AdmitDecision: ...


@dataclass(slots=True)
class TaskResult:
    id: str
    status: TaskStatus = "pending"
    output: str = ""
    attempts: int = 0
    error: str | None = None
    """Why it failed, was skipped or was cancelled."""
    duration_s: float = 0.0
    nested: DagResult | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "output": self.output,
            "attempts": self.attempts,
            "error": self.error,
            "duration_s": round(self.duration_s, 6),
        }
        if self.nested is not None:
            data["nested"] = self.nested.to_dict()
        return data


@dataclass(slots=True)
class DagResult:
    name: str
    run_id: str
    tasks: dict[str, TaskResult]
    """In declaration order."""
    duration_s: float = 0.0
    terminal: tuple[str, ...] = ()
    """Tasks nothing depends on: their outputs are the DAG's output."""

    @property
    def success(self) -> bool:
        return all(result.status == "succeeded" for result in self.tasks.values())

    @property
    def failed(self) -> list[TaskResult]:
        return [result for result in self.tasks.values() if result.status == "failed"]

    @property
    def outputs(self) -> dict[str, str]:
        return {r.id: r.output for r in self.tasks.values() if r.status == "succeeded"}

    @property
    def final_output(self) -> str:
        outputs = self.outputs
        return "\n\n".join(outputs[task] for task in self.terminal if task in outputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "run_id": self.run_id,
            "success": self.success,
            "duration_s": round(self.duration_s, 6),
            "tasks": [result.to_dict() for result in self.tasks.values()],
            "final_output": self.final_output,
        }


class NestedDagFailed(HeliosError):
    """A ``dag`` task's nested DAG did not succeed."""


class DagScheduler:
    def __init__(
        self,
        runner: TaskRunner,
        *,
        sink: EventSink | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.runner = runner
        self.sink: EventSink = sink if sink is not None else FanOut([])
        self.admission = admission

    async def run(
        self,
        dag: Dag,
        *,
        goal: str = "",
        outputs: Mapping[str, str] | None = None,
        context: CallContext | None = None,
    ) -> DagResult:
        """Run ``dag``; ``outputs`` marks tasks as already done with these outputs (resume);
        ``context`` says for whom (tenant, priority, key) and may name the run's id.

        The DAG must have passed :func:`~helios.pipeline.dag.check_dag`.
        """
        run = _DagRun(self, dag, goal, dict(outputs or {}), context or CallContext())
        self.sink.emit(
            TaskStarted(
                task_id=run.result.run_id,
                kind="dag",
                goal=goal,
                flags={
                    "dag": dag.name,
                    "tasks": len(dag.tasks),
                    "concurrency": dag.concurrency,
                    "failure_policy": dag.failure_policy,
                },
            )
        )
        started = time.perf_counter()
        success = False
        try:
            await run.execute()
            success = run.result.success
        except (asyncio.CancelledError, KeyboardInterrupt):
            # a cancelled run is neither a success nor a failure: summaries count it apart
            self.sink.emit(
                ErrorEvent(
                    task_id=run.result.run_id, kind=CANCELLED, message="the DAG run was cancelled"
                )
            )
            raise
        finally:
            run.result.duration_s = time.perf_counter() - started
            self.sink.emit(
                TaskFinished(
                    task_id=run.result.run_id, success=success, duration_s=run.result.duration_s
                )
            )
        return run.result


class _DagRun:
    """The state of one run; the dispatcher loop is the only writer of the bookkeeping."""

    def __init__(
        self,
        scheduler: DagScheduler,
        dag: Dag,
        goal: str,
        outputs: dict[str, str],
        context: CallContext,
    ) -> None:
        self.scheduler = scheduler
        self.dag = dag
        self.goal = goal
        self.specs = {spec.id: spec for spec in dag.tasks}
        self.order = {spec.id: index for index, spec in enumerate(dag.tasks)}
        self.dependents: dict[str, list[str]] = {spec.id: [] for spec in dag.tasks}
        for spec in dag.tasks:
            for dependency in dict.fromkeys(spec.depends_on):
                self.dependents[dependency].append(spec.id)
        terminal = tuple(task for task, after in self.dependents.items() if not after)
        self.result = DagResult(
            dag.name,
            context.task_id or uuid.uuid4().hex,
            {spec.id: TaskResult(spec.id) for spec in dag.tasks},
            terminal=terminal,
        )
        self.context = context.model_copy(update={"task_id": self.result.run_id})
        self.waiting_on = {spec.id: len(set(spec.depends_on)) for spec in dag.tasks}
        self.ready: list[tuple[int, int, str]] = []
        self.running: dict[str, asyncio.Task[None]] = {}
        self.deferred: dict[str, asyncio.Task[None]] = {}
        self.inbox: asyncio.Queue[tuple[Literal["done", "ready"], str]] = asyncio.Queue()
        self.aborted = False
        self.orphans: list[asyncio.Task[None]] = []
        for task, output in outputs.items():
            if task in self.specs:
                self.result.tasks[task].status = "succeeded"
                self.result.tasks[task].output = output
        for task in self.specs:
            if self.result.tasks[task].status == "succeeded":
                for dependent in self.dependents[task]:
                    self.waiting_on[dependent] -= 1
        for task in self.specs:
            if self.waiting_on[task] == 0 and self.result.tasks[task].status == "pending":
                self._push(task)

    def _push(self, task: str) -> None:
        heapq.heappush(self.ready, (-self.specs[task].priority, self.order[task], task))

    async def execute(self) -> None:
        try:
            while True:
                await self._dispatch()
                if not (self.running or self.deferred):
                    break
                kind, task = await self.inbox.get()
                if kind == "ready":
                    self.deferred.pop(task, None)
                    self._push(task)
                else:
                    self.running.pop(task, None)
                    self._settled(task)
            for result in self.result.tasks.values():  # only reachable after an abort
                if result.status == "pending":
                    result.status, result.error = "skipped", "not reached"
        finally:
            await self._cancel_all("the DAG run was cancelled")

    async def _dispatch(self) -> None:
        admission = self.scheduler.admission
        while self.ready and not self.aborted and len(self.running) < self.dag.concurrency:
            _, _, task = heapq.heappop(self.ready)
            spec = self.specs[task]
            if admission is not None and spec.kind != "dag":
                decision = await self._admit(admission, spec)
                if decision.action == "defer":
                    timer = asyncio.create_task(self._wake_after(task, decision.eta_s))
                    self.deferred[task] = timer
                    continue
                if decision.action == "reject":
                    self._fail(task, f"rejected by admission: {decision.reason}")
                    self._settled(task)
                    continue
            self.result.tasks[task].status = "running"
            self.running[task] = asyncio.create_task(self._execute(spec), name=f"dag:{task}")

    async def _admit(self, admission: Admission, spec: TaskSpec) -> AdmitDecision:
        try:
            return await admission.admit(spec)
        except BudgetExceeded as exc:
            return AdmitDecision.over_budget(exc)
        except HeliosError as exc:
            return AdmitDecision.reject(str(exc))

    async def _wake_after(self, task: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self.inbox.put_nowait(("ready", task))

    async def _execute(self, spec: TaskSpec) -> None:
        result = self.result.tasks[spec.id]
        started = time.perf_counter()
        values = {GOAL: self.goal}
        for dependency in spec.depends_on:
            values[dependency] = self.result.tasks[dependency].output
        try:
            prompt = render_prompt(spec.prompt, values)
            retry = RetryPolicy(attempts=spec.retries + 1, base_s=spec.backoff_s)
            for attempt in range(1, spec.retries + 2):
                result.attempts = attempt
                try:
                    async with asyncio.timeout(spec.timeout_s):
                        output = await self._call(spec, prompt, result)
                except TimeoutError:
                    error = (
                        f"timed out after {spec.timeout_s:g} s"
                        if spec.timeout_s is not None
                        else "timed out"
                    )
                except (ConfigError, InputError) as exc:
                    result.error = str(exc)
                    break
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                else:
                    result.status, result.output, result.error = "succeeded", output, None
                    return
                result.error = error
                delay = retry.delay_s(attempt)
                if delay is not None:
                    await asyncio.sleep(delay)
            if spec.retries and result.attempts > 1:
                result.error = f"{result.error} (after {result.attempts} attempts)"
            result.status = "failed"
        except asyncio.CancelledError:
            if result.status != "cancelled":  # fail_fast has already said why
                result.status, result.error = "cancelled", "the DAG run was cancelled"
            raise
        finally:
            result.duration_s = time.perf_counter() - started
            self.inbox.put_nowait(("done", spec.id))

    async def _call(self, spec: TaskSpec, prompt: str, result: TaskResult) -> str:
        if spec.kind != "dag":
            context = self.context.model_copy(update={"stage": spec.id})
            return await self.scheduler.runner.run(spec, prompt, context)
        assert spec.dag is not None  # check_dag guarantees it
        nested = DagScheduler(
            self.scheduler.runner, sink=self.scheduler.sink, admission=self.scheduler.admission
        )
        base = self.context.model_copy(update={"task_id": None})  # the nested run's own id
        child = await nested.run(spec.dag, goal=prompt, context=base)
        result.nested = child
        if not child.success:
            failed = child.failed
            why = f"{failed[0].id} failed: {failed[0].error}" if failed else "it did not finish"
            raise NestedDagFailed(f"nested dag '{spec.dag.name}': {why}")
        return child.final_output

    def _settled(self, task: str) -> None:
        result = self.result.tasks[task]
        if result.status == "succeeded":
            self._release_dependents(task)
            return
        if result.status != "failed":
            return
        self.scheduler.sink.emit(
            ErrorEvent(
                task_id=self.result.run_id,
                kind="dag_task_failed",
                message=f"{task}: {result.error}",
                stage=task,
            )
        )
        if self.dag.failure_policy == "fail_fast":
            self._abort(task)
        else:
            self._skip_dependents(task, task)

    def _release_dependents(self, task: str) -> None:
        for dependent in self.dependents[task]:
            self.waiting_on[dependent] -= 1
            if self.waiting_on[dependent] == 0 and self.result.tasks[dependent].status == "pending":
                self._push(dependent)

    def _skip_dependents(self, task: str, root: str) -> None:
        for dependent in self.dependents[task]:
            result = self.result.tasks[dependent]
            if result.status == "pending":
                result.status, result.error = "skipped", f"depends on failed {root}"
                self._skip_dependents(dependent, root)

    def _fail(self, task: str, error: str) -> None:
        result = self.result.tasks[task]
        result.status, result.error = "failed", error

    def _abort(self, failed: str) -> None:
        self.aborted = True
        self.ready.clear()
        for timer in self.deferred.values():
            timer.cancel()
        for task, runner in self.running.items():
            if runner.done():  # finished in the same tick: its own message settles it
                continue
            runner.cancel()
            self.result.tasks[task].status = "cancelled"
            self.result.tasks[task].error = f"cancelled: {failed} failed (fail_fast)"
        # a cancelled timer never reports back: stop waiting for it, but still reap it
        self.orphans.extend(self.deferred.values())
        self.deferred.clear()
        for result in self.result.tasks.values():
            if result.status == "pending":
                result.status, result.error = "skipped", f"skipped: {failed} failed (fail_fast)"

    async def _cancel_all(self, reason: str) -> None:
        pending = [*self.running.values(), *self.deferred.values(), *self.orphans]
        for runner in pending:
            runner.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        for task in [*self.running, *self.deferred]:
            result = self.result.tasks[task]
            if result.status in ("running", "pending"):
                result.status, result.error = "cancelled", reason
        self.running.clear()
        self.deferred.clear()
