"""The DAG scheduler with a scripted runner: order, data flow, limits, failures, admission."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from helios.errors import BudgetExceeded, InputError
from helios.ledger.events import ErrorEvent, PersonaLLMRun, TaskFinished, TaskStarted
from helios.ledger.sink import MemorySink
from helios.messages import CallContext
from helios.pipeline.dag import Dag, TaskSpec, check_dag
from helios.pipeline.dag_runner import EngineTaskRunner
from helios.pipeline.scheduler import AdmitDecision, DagScheduler
from tests.pipeline.helpers import Personas, ScriptedGatherer, make_world, pipeline_settings

Behaviour = Callable[[str], Awaitable[str]] | str | BaseException


@dataclass
class ScriptedRunner:
    """Answers each task from ``script`` (a reply, an exception, or an async fn(prompt))."""

    script: dict[str, Any] = field(default_factory=dict)
    delay_s: float = 0.0
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    prompts: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, list[float]] = field(default_factory=dict)
    contexts: dict[str, CallContext] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0

    async def run(self, task: TaskSpec, prompt: str, context: CallContext) -> str:
        self.contexts[task.id] = context
        self.started.append(task.id)
        self.prompts[task.id] = prompt
        self.attempts.setdefault(task.id, []).append(time.perf_counter())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            behaviour = self.script.get(task.id, f"out-{task.id}")
            if isinstance(behaviour, BaseException):
                raise behaviour
            if callable(behaviour):
                return str(await behaviour(prompt))
            return str(behaviour)
        finally:
            self.in_flight -= 1
            self.finished.append(task.id)


def dag(*tasks: dict[str, Any], **options: Any) -> Dag:
    built = Dag(tasks=[TaskSpec.model_validate(t) for t in tasks], **options)
    check_dag(built)
    return built


def persona_task(task_id: str, *deps: str, **fields: Any) -> dict[str, Any]:
    prompt = fields.pop("prompt", " ".join(["{goal}", *(f"{{{d}}}" for d in deps)]))
    return {"id": task_id, "persona": "p", "depends_on": list(deps), "prompt": prompt, **fields}


async def test_dependencies_order_the_run_and_outputs_feed_prompts() -> None:
    runner = ScriptedRunner(script={"a": "alpha", "b": "beta"})
    graph = dag(
        persona_task("c", "a", "b", prompt="combine {a} + {b} for {goal}"),
        persona_task("a"),
        persona_task("b", "a", prompt="extend {a}"),
    )
    result = await DagScheduler(runner).run(graph, goal="G")
    assert result.success
    assert runner.started == ["a", "b", "c"]
    assert runner.prompts == {"a": "G", "b": "extend alpha", "c": "combine alpha + beta for G"}
    assert list(result.tasks) == ["c", "a", "b"]  # declaration order
    assert result.final_output == "out-c"
    assert result.tasks["a"].attempts == 1 and result.tasks["a"].status == "succeeded"
    data = result.to_dict()
    assert data["success"] is True and data["tasks"][0]["id"] == "c"


async def test_concurrency_limit_is_respected() -> None:
    runner = ScriptedRunner(delay_s=0.01)
    graph = dag(*(persona_task(f"t{i}") for i in range(10)), concurrency=3)
    result = await DagScheduler(runner).run(graph)
    assert result.success
    assert runner.max_in_flight == 3


async def test_higher_priority_starts_first() -> None:
    runner = ScriptedRunner()
    graph = dag(
        persona_task("low", priority=0),
        persona_task("high", priority=5),
        persona_task("mid", priority=2),
        persona_task("mid2", priority=2),
        concurrency=1,
    )
    await DagScheduler(runner).run(graph)
    assert runner.started == ["high", "mid", "mid2", "low"]


async def test_timeout_then_retries_with_backoff_then_failure() -> None:
    async def slow(prompt: str) -> str:
        await asyncio.sleep(1)
        return "late"

    runner = ScriptedRunner(script={"a": slow})
    graph = dag(persona_task("a", timeout_s=0.02, retries=2, backoff_s=0.03))
    result = await DagScheduler(runner).run(graph)
    task = result.tasks["a"]
    assert task.status == "failed" and task.attempts == 3
    assert task.error is not None and "timed out after 0.02 s" in task.error
    assert "after 3 attempts" in task.error
    starts = runner.attempts["a"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # each gap is the timeout plus the backoff: 0.03 s, then 0.06 s
    assert gaps[0] >= 0.02 + 0.03 - 0.005
    assert gaps[1] >= 0.02 + 0.06 - 0.005
    assert not result.success


async def test_a_retry_can_succeed() -> None:
    calls = {"n": 0}

    async def flaky(prompt: str) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("transient")
        return "ok"

    runner = ScriptedRunner(script={"a": flaky})
    result = await DagScheduler(runner).run(dag(persona_task("a", retries=1, backoff_s=0)))
    assert result.success and result.tasks["a"].attempts == 2
    assert result.tasks["a"].output == "ok"


async def test_input_errors_are_not_retried() -> None:
    runner = ScriptedRunner(script={"a": InputError("bad persona")})
    result = await DagScheduler(runner).run(dag(persona_task("a", retries=3, backoff_s=0)))
    assert result.tasks["a"].attempts == 1 and result.tasks["a"].error == "bad persona"


async def test_fail_fast_cancels_running_tasks_and_skips_the_rest() -> None:
    async def slow(prompt: str) -> str:
        await asyncio.sleep(5)
        return "never"

    runner = ScriptedRunner(script={"bad": RuntimeError("boom"), "slow": slow})
    sink = MemorySink()
    graph = dag(
        persona_task("slow"),
        persona_task("bad"),
        persona_task("after", "bad"),
        persona_task("later", "slow"),
    )
    started = time.perf_counter()
    result = await DagScheduler(runner, sink=sink).run(graph)
    assert time.perf_counter() - started < 2
    statuses = {task: r.status for task, r in result.tasks.items()}
    assert statuses == {
        "slow": "cancelled",
        "bad": "failed",
        "after": "skipped",
        "later": "skipped",
    }
    assert result.tasks["bad"].error == "RuntimeError: boom"
    assert result.tasks["slow"].error == "cancelled: bad failed (fail_fast)"
    errors = sink.of_type(ErrorEvent)
    assert len(errors) == 1 and errors[0].stage == "bad" and "boom" in errors[0].message
    assert errors[0].task_id == result.run_id


async def test_continue_runs_what_it_can_and_skips_dependents() -> None:
    runner = ScriptedRunner(script={"b": RuntimeError("boom")})
    graph = dag(
        persona_task("a"),
        persona_task("b"),
        persona_task("c", "b"),
        persona_task("d", "c"),
        persona_task("e", "a"),
        failure_policy="continue",
    )
    result = await DagScheduler(runner).run(graph)
    statuses = {task: r.status for task, r in result.tasks.items()}
    assert statuses == {
        "a": "succeeded",
        "b": "failed",
        "c": "skipped",
        "d": "skipped",
        "e": "succeeded",
    }
    assert result.tasks["c"].error == "depends on failed b"
    assert result.tasks["d"].error == "depends on failed b"
    assert not result.success
    assert result.outputs == {"a": "out-a", "e": "out-e"}


async def test_cancelling_run_cancels_running_tasks() -> None:
    cancelled: list[str] = []

    async def hang(prompt: str) -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(prompt)
            raise
        return "never"

    runner = ScriptedRunner(script={"a": hang, "b": hang})
    sink = MemorySink()
    scheduler = DagScheduler(runner, sink=sink)
    run = asyncio.create_task(scheduler.run(dag(persona_task("a"), persona_task("b")), goal="g"))
    await asyncio.sleep(0.02)
    assert runner.in_flight == 2
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert sorted(cancelled) == ["g", "g"]
    assert runner.in_flight == 0
    finished = sink.of_type(TaskFinished)
    assert len(finished) == 1 and finished[0].success is False
    # recorded as a cancellation, which no summary counts as a failure
    [error] = sink.of_type(ErrorEvent)
    assert (error.task_id, error.kind) == (finished[0].task_id, "cancelled")


async def test_events_mark_the_dag_run() -> None:
    sink = MemorySink()
    result = await DagScheduler(ScriptedRunner(), sink=sink).run(dag(persona_task("a")), goal="G")
    started = sink.of_type(TaskStarted)
    assert len(started) == 1 and started[0].kind == "dag" and started[0].goal == "G"
    assert started[0].task_id == result.run_id and started[0].flags["tasks"] == 1
    assert sink.of_type(TaskFinished)[0].success is True


async def test_given_outputs_resume_a_run() -> None:
    runner = ScriptedRunner()
    graph = dag(persona_task("a"), persona_task("b", "a", prompt="use {a}"))
    result = await DagScheduler(runner).run(graph, outputs={"a": "cached"})
    assert runner.started == ["b"] and runner.prompts["b"] == "use cached"
    assert result.success


@dataclass
class ScriptedAdmission:
    decisions: dict[str, list[AdmitDecision | BaseException]]
    asked: list[str] = field(default_factory=list)

    async def admit(self, task: TaskSpec) -> AdmitDecision:
        self.asked.append(task.id)
        queue = self.decisions.get(task.id, [])
        decision = queue.pop(0) if queue else AdmitDecision.allow()
        if isinstance(decision, BaseException):
            raise decision
        return decision


async def test_deferred_task_does_not_block_other_ready_tasks() -> None:
    admission = ScriptedAdmission({"first": [AdmitDecision.defer(0.05)]})
    runner = ScriptedRunner(delay_s=0.005)
    graph = dag(persona_task("first", priority=10), persona_task("second"), concurrency=1)
    result = await DagScheduler(runner, admission=admission).run(graph)
    assert result.success
    # with one slot, "second" ran while "first" waited out its deferral without the slot
    assert runner.started == ["second", "first"]
    assert admission.asked == ["first", "second", "first"]


async def test_rejected_task_fails_with_the_budget_reason() -> None:
    over = BudgetExceeded(
        "account default: 5h window is full", account="default", window="5h", resets_at=0.0
    )
    admission = ScriptedAdmission({"a": [over], "b": [AdmitDecision.reject("tenant is blocked")]})
    runner = ScriptedRunner()
    graph = dag(persona_task("a"), persona_task("b"), failure_policy="continue")
    result = await DagScheduler(runner, admission=admission).run(graph)
    error_a = result.tasks["a"].error or ""
    assert result.tasks["a"].status == "failed"
    assert "5h window is full" in error_a and "resets at" in error_a
    assert result.tasks["b"].error == "rejected by admission: tenant is blocked"
    assert runner.started == []


async def test_nested_dag_runs_with_the_parent_prompt_as_goal() -> None:
    runner = ScriptedRunner(script={"inner2": "inner-final"})
    inner = {
        "name": "inner",
        "tasks": [persona_task("inner1"), persona_task("inner2", "inner1")],
    }
    graph = dag(
        persona_task("a"),
        {"id": "sub", "kind": "dag", "dag": inner, "depends_on": ["a"], "prompt": "sub of {a}"},
        persona_task("z", "sub", prompt="final {sub}"),
    )
    sink = MemorySink()
    result = await DagScheduler(runner, sink=sink).run(graph, goal="G")
    assert result.success
    assert runner.prompts["inner1"] == "sub of out-a"
    assert runner.prompts["z"] == "final inner-final"
    nested = result.tasks["sub"].nested
    assert nested is not None and nested.success and nested.name == "inner"
    assert len(sink.of_type(TaskStarted)) == 2  # the parent run and the nested one


async def test_nested_dag_failure_fails_the_task() -> None:
    runner = ScriptedRunner(script={"inner1": RuntimeError("deep")})
    graph = dag({"id": "sub", "kind": "dag", "dag": {"tasks": [persona_task("inner1")]}})
    result = await DagScheduler(runner).run(graph)
    assert result.tasks["sub"].status == "failed"
    assert "inner1 failed: RuntimeError: deep" in (result.tasks["sub"].error or "")


async def test_each_node_runs_in_the_dag_runs_context() -> None:
    runner = ScriptedRunner()
    graph = dag(
        persona_task("a"),
        {"id": "sub", "kind": "dag", "dag": {"tasks": [persona_task("inner")]}},
    )
    base = CallContext(tenant="acme", priority="high")
    result = await DagScheduler(runner).run(graph, context=base)
    assert result.success
    outer, inner = runner.contexts["a"], runner.contexts["inner"]
    assert (outer.task_id, outer.stage, outer.tenant) == (result.run_id, "a", "acme")
    nested = result.tasks["sub"].nested
    assert nested is not None and inner.task_id == nested.run_id != result.run_id
    assert (inner.stage, inner.tenant, inner.priority) == ("inner", "acme", "high")


async def test_engine_runner_runs_persona_and_dialectic_tasks() -> None:
    world = make_world(Personas(thesis="Thesis says X."))
    world.personas.zeitgeist = "Trends: up."  # type: ignore[attr-defined]
    settings = pipeline_settings()
    gatherer = ScriptedGatherer()
    runner = EngineTaskRunner(world.engine, settings, None, lambda: gatherer)
    graph = dag(
        {"id": "market", "persona": "zeitgeist", "prompt": "market for {goal}"},
        {"id": "debate", "kind": "dialectic", "depends_on": ["market"], "prompt": "{market}"},
    )
    result = await DagScheduler(runner, sink=world.sink).run(graph, goal="tea")
    assert result.success, result.to_dict()
    assert result.tasks["market"].output == "Trends: up."
    zeitgeist = world.personas.called("zeitgeist")[0]
    assert "market for tea" in zeitgeist.messages[0].content
    assert zeitgeist.task_type == "dag"
    assert result.tasks["debate"].output == Personas().synthesis
    assert "Trends: up." in (world.personas.called("thesis")[0].system or "")
    assert gatherer.started_at is not None
    # the engine records every persona node's call under the DAG run, staged by node id
    [market] = [r for r in world.sink.of_type(PersonaLLMRun) if r.persona == "zeitgeist"]
    assert (market.task_id, market.stage) == (result.run_id, "market")
    await runner.aclose()
