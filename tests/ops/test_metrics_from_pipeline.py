"""The metrics of real dialectic runs (personas answered by a FunctionProvider): accepted
by the gate on a second pass, never accepted, and stopped as Ctrl-C stops them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from helios.messages import Request
from helios.ops.metrics import HeliosMetrics
from tests.ops.test_metrics import value
from tests.pipeline.helpers import (
    FAILING_VERDICT,
    PASSING_VERDICT,
    Personas,
    World,
    make_world,
    pipeline_settings,
)

GOAL = "Should a five-person startup adopt microservices?"


def metrics_of(world: World) -> HeliosMetrics:
    metrics = HeliosMetrics()
    for event in world.sink.events:
        metrics.emit(event)
    return metrics


async def test_a_run_the_gate_accepts_on_its_second_pass() -> None:
    verdicts: Iterator[str] = iter([FAILING_VERDICT, PASSING_VERDICT])
    drafts: Iterator[str] = iter(["Microservices [E1].", "A modular monolith first [E1]."])

    def judge(request: Request) -> str:
        return next(verdicts)

    def synthesis(request: Request) -> str:
        return next(drafts)  # a new draft: the judge is asked again, not its cached verdict

    world = make_world(Personas(synthesis=synthesis, judge=judge))
    result = await world.pipeline(pipeline_settings(max_passes=2)).run(GOAL)
    assert result.accepted_pass == 2
    metrics = metrics_of(world)
    assert value(metrics, "helios_tasks_ended_total", status="succeeded") == 1
    assert value(metrics, "helios_tasks_accepted_total") == 1
    assert value(metrics, "helios_gate_verdicts_total", result="failed") == 1
    assert value(metrics, "helios_gate_verdicts_total", result="passed") == 1
    assert value(metrics, "helios_second_passes_total") == 1
    calls = {"provider": "fake", "model": "model", "source": "provider"}
    assert value(metrics, "helios_llm_calls_total", persona="judge", **calls) == 2


async def test_a_run_the_gate_never_accepts_succeeds_unaccepted() -> None:
    world = make_world(Personas(judge=FAILING_VERDICT))
    result = await world.pipeline(pipeline_settings(max_passes=2)).run(GOAL)
    assert result.accepted_pass is None
    metrics = metrics_of(world)
    assert value(metrics, "helios_tasks_ended_total", status="succeeded") == 1
    assert value(metrics, "helios_tasks_accepted_total") == 0
    assert value(metrics, "helios_gate_verdicts_total", result="failed") == 2


async def test_a_cancelled_run_is_counted_cancelled_not_failed() -> None:
    world = make_world(
        first_chunk_delay_s=lambda r: 5.0 if r.context.persona == "antithesis" else 0.0
    )
    task = asyncio.create_task(world.pipeline().run(GOAL))
    while not world.personas.called("thesis"):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the antithesis is now waiting on its provider
    task.cancel()  # what Ctrl-C does to a run
    with pytest.raises(asyncio.CancelledError):
        await task
    metrics = metrics_of(world)
    assert value(metrics, "helios_tasks_ended_total", status="cancelled") == 1
    assert value(metrics, "helios_tasks_ended_total", status="failed") == 0
    assert value(metrics, "helios_tasks_running") == 0
    assert value(metrics, "helios_errors_total", kind="cancelled", stage="antithesis") == 1
