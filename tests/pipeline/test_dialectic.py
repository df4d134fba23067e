import asyncio

import pytest

from helios.config.orchestration import PersonaSettings
from helios.errors import BadRequest, InputError, ProviderUnavailable
from helios.ledger.events import (
    AsyncFallback,
    CacheLookup,
    ErrorEvent,
    EvidenceGathered,
    GateVerdict,
    PersonaLLMRun,
    SecondPass,
    TaskFinished,
    TaskStarted,
)
from helios.messages import CallContext, Request
from helios.pipeline.dialectic import NO_EVIDENCE
from tests.pipeline.helpers import (
    FAILING_VERDICT,
    PASSING_VERDICT,
    Personas,
    ScriptedGatherer,
    evidence_of,
    make_world,
    pipeline_settings,
)

GOAL = "Should a five-person startup adopt microservices?"


async def test_happy_path_events_and_result() -> None:
    world = make_world()
    result = await world.pipeline().run(GOAL)
    assert result.answer == "Start with a modular monolith, split later [E1]."
    assert result.accepted_pass == 1
    assert [s.stage for s in result.stages] == ["thesis", "antithesis", "synthesis", "judge"]
    types = world.sink.types()
    assert types[0] == "task_started" and types[-1] == "task_finished"
    for expected in ("evidence_gathered", "persona_llm_run", "cache_lookup", "gate_verdict"):
        assert expected in types
    started = world.sink.of_type(TaskStarted)[0]
    assert started.flags["async_thesis"] is True and started.flags["response_cache"] is True
    runs = world.sink.of_type(PersonaLLMRun)
    assert {run.persona for run in runs} == {"thesis", "antithesis", "synthesis", "judge"}
    for run in runs:
        assert run.task_id == result.task_id
        assert 0.0 <= run.perceived_improvement <= 1.0
        assert run.duration_s >= run.ttft_s
    finished = world.sink.of_type(TaskFinished)[0]
    assert finished.success and finished.accepted_pass == 1
    assert {event.task_id for event in world.sink.events} == {result.task_id}


async def test_every_persona_call_carries_the_task_stage_and_pass_in_its_context() -> None:
    world = make_world(Personas(judge=FAILING_VERDICT))
    base = CallContext(task_id="task-7", tenant="acme", priority="high", key_id="k1")
    result = await world.pipeline(pipeline_settings(max_passes=2)).run(GOAL, context=base)
    assert result.task_id == "task-7"
    contexts = [request.context for _, _, request in world.personas.calls]
    assert {(c.task_id, c.tenant, c.priority, c.key_id) for c in contexts} == {
        ("task-7", "acme", "high", "k1")
    }
    staged = [(c.stage, c.persona, c.pass_number) for c in contexts]
    assert ("synthesis", "synthesis", 2) in staged
    # the engine records every call, the second judge's too (its prompt repeats: a cache hit)
    runs = world.sink.of_type(PersonaLLMRun)
    assert [(r.stage, r.pass_number) for r in runs] == [
        ("thesis", 1),
        ("antithesis", 1),
        ("synthesis", 1),
        ("judge", 1),
        ("synthesis", 2),
        ("judge", 2),
    ]
    assert runs[-1].cache_layer == "L2" and {r.task_id for r in runs} == {"task-7"}


async def test_async_thesis_runs_while_evidence_is_gathered() -> None:
    world = make_world(gatherer=ScriptedGatherer(delay_s=0.2))
    await world.pipeline().run(GOAL)
    [(_, thesis_at, thesis_request)] = [c for c in world.personas.calls if c[0] == "thesis"]
    assert world.gatherer.finished_at is not None
    assert thesis_at < world.gatherer.finished_at  # started before the evidence was in
    assert "[E1]" not in thesis_request.messages[-1].content


async def test_sequential_thesis_waits_for_the_evidence() -> None:
    world = make_world(gatherer=ScriptedGatherer(delay_s=0.05))
    settings = pipeline_settings(async_thesis={"enabled": False})
    await world.pipeline(settings).run(GOAL)
    [(_, thesis_at, thesis_request)] = [c for c in world.personas.calls if c[0] == "thesis"]
    assert world.gatherer.finished_at is not None
    assert thesis_at >= world.gatherer.finished_at
    assert "[E1]" in (thesis_request.system or "")
    assert world.sink.of_type(TaskStarted)[0].flags["async_thesis"] is False


async def test_thesis_timeout_falls_back_to_sequential() -> None:
    def slow_first_thesis(request: Request) -> float:
        is_async_thesis = "[E1]" not in (request.system or "")
        return 5.0 if request.context.persona == "thesis" and is_async_thesis else 0.0

    world = make_world(first_chunk_delay_s=slow_first_thesis)
    settings = pipeline_settings(async_thesis={"enabled": True, "timeout_sec": 0.05})
    result = await asyncio.wait_for(world.pipeline(settings).run(GOAL), timeout=3)
    [fallback] = world.sink.of_type(AsyncFallback)
    assert fallback.reason.startswith("timeout")
    assert result.async_fallback == fallback.reason
    # the sequential thesis had the evidence; the user still got an answer
    assert "[E1]" in (world.personas.called("thesis")[-1].system or "")
    assert result.answer


async def test_thesis_error_falls_back_to_sequential() -> None:
    failures = iter([ProviderUnavailable("overloaded", provider="fake", model="model")])

    def thesis(request: Request) -> str:
        for failure in failures:
            raise failure
        return "A recovered thesis."

    world = make_world(Personas(thesis=thesis))
    result = await world.pipeline().run(GOAL)
    [fallback] = world.sink.of_type(AsyncFallback)
    assert fallback.reason.startswith("error: ProviderUnavailable")
    assert result.stages[0].stage == "thesis"
    assert world.sink.of_type(TaskFinished)[0].success


async def test_second_run_is_served_from_the_cache_with_the_same_chunks() -> None:
    world = make_world()
    first = await world.pipeline().run(GOAL)
    first_chunks = dict(world.observer.chunks)
    calls_after_first = len(world.personas.calls)
    world.observer.chunks.clear()
    second = await world.pipeline().run(GOAL)
    assert len(world.personas.calls) == calls_after_first  # no provider call at all
    assert all(stage.cache_layer == "L2" for stage in second.stages)
    assert second.answer == first.answer
    assert world.observer.chunks == first_chunks  # replayed chunk by chunk
    lookups = [e for e in world.sink.of_type(CacheLookup) if e.task_id == second.task_id]
    assert len(lookups) == 4 and all(lookup.hit for lookup in lookups)
    exact = world.engine.cache.exact if world.engine.cache else None
    snapshot = exact.snapshot() if exact else {}
    assert snapshot["by_persona"]["thesis"]["hits"] == 1
    assert snapshot["by_persona"]["thesis"]["misses"] == 1


async def test_cache_entries_expire_after_their_ttl() -> None:
    now = [1_000_000.0]
    world = make_world(clock=lambda: now[0])
    await world.pipeline().run(GOAL)
    now[0] += 3601  # the default TTL is 3600 s
    result = await world.pipeline().run(GOAL)
    assert all(stage.cache_layer is None for stage in result.stages)


async def test_cache_off_means_every_call_reaches_the_provider() -> None:
    world = make_world(cache=False)
    await world.pipeline().run(GOAL)
    await world.pipeline().run(GOAL)
    assert len(world.personas.called("thesis")) == 2
    assert not world.sink.of_type(CacheLookup)


async def test_gate_failure_triggers_a_second_pass_with_feedback() -> None:
    drafts = iter(["An answer with no citations.", "A better answer [E2]."])
    world = make_world(Personas(synthesis=lambda request: next(drafts)))
    result = await world.pipeline().run(GOAL)
    assert result.accepted_pass == 2
    assert [outcome.gate.passed for outcome in result.passes] == [False, True]
    [second] = world.sink.of_type(SecondPass)
    assert second.pass_number == 2 and "cites no evidence" in second.feedback
    second_prompt = world.personas.called("synthesis")[1].messages[-1].content
    assert "An answer with no citations." in second_prompt  # the draft it must improve
    verdicts = world.sink.of_type(GateVerdict)
    assert [v.evidence_ok for v in verdicts] == [False, True]


async def test_no_pass_after_max_passes_is_reported() -> None:
    world = make_world(Personas(judge=FAILING_VERDICT))
    settings = pipeline_settings(max_passes=3)
    result = await world.pipeline(settings).run(GOAL)
    assert result.accepted_pass is None
    assert len(result.passes) == 3
    assert len(world.sink.of_type(SecondPass)) == 2
    assert result.answer == result.passes[-1].text
    assert world.sink.of_type(TaskFinished)[0].accepted_pass is None


async def test_judge_gets_one_repair_request_for_invalid_json() -> None:
    replies = iter(["I think it is fine!", PASSING_VERDICT])
    world = make_world(Personas(judge=lambda request: next(replies)))
    result = await world.pipeline().run(GOAL)
    assert result.accepted_pass == 1
    repair = world.personas.called("judge")[1]
    assert repair.messages[1].content == "I think it is fine!"  # its own reply, then the ask
    assert "not a valid verdict" in repair.messages[2].content


async def test_judge_invalid_twice_is_a_failed_verdict_with_the_raw_text() -> None:
    world = make_world(Personas(judge="no json here"))
    result = await world.pipeline(pipeline_settings(max_passes=1)).run(GOAL)
    verdict = result.passes[0].gate.verdict
    assert not verdict.valid and not verdict.passed
    assert verdict.raw == "no json here"
    assert result.accepted_pass is None
    assert world.sink.of_type(GateVerdict)[0].judge_valid is False


async def test_without_documents_the_gate_says_evidence_was_absent() -> None:
    world = make_world(
        Personas(synthesis="Keep one service."), gatherer=ScriptedGatherer(evidence_of(0))
    )
    result = await world.pipeline().run(GOAL)
    assert result.passes[0].gate.evidence.evidence_absent
    assert result.accepted_pass == 1
    assert NO_EVIDENCE in (world.personas.called("synthesis")[0].system or "")


async def test_citing_absent_evidence_fails_the_gate() -> None:
    world = make_world(gatherer=ScriptedGatherer(evidence_of(0)))
    result = await world.pipeline(pipeline_settings(max_passes=1)).run(GOAL)
    assert not result.passes[0].gate.evidence.ok
    assert "no evidence was provided" in result.passes[0].gate.evidence.problems[0]


@pytest.mark.parametrize("goal", ["", "   \n\t"])
async def test_empty_goal_is_rejected(goal: str) -> None:
    world = make_world()
    with pytest.raises(InputError, match="goal is empty"):
        await world.pipeline().run(goal)
    assert world.personas.calls == []


async def test_provider_failing_mid_stream_is_recorded_and_leaves_no_cache_entry() -> None:
    broken = ["Half an ", "antithesis", ConnectionResetError("reset")]
    world = make_world(Personas(antithesis=lambda request: broken))
    with pytest.raises(ProviderUnavailable) as info:
        await world.pipeline().run(GOAL)
    assert info.value.partial_text == "Half an antithesis"
    [error] = world.sink.of_type(ErrorEvent)
    assert error.stage == "antithesis" and error.kind == "ProviderUnavailable"
    assert world.sink.of_type(TaskFinished)[0].success is False
    # only the thesis (complete) was cached; the broken antithesis was not
    assert await world.backend.count("l2:") == 1


async def test_persona_settings_route_and_stop_streaming() -> None:
    world = make_world()
    settings = pipeline_settings().model_copy(
        update={"personas": {"thesis": PersonaSettings(streaming=False, max_tokens=77)}}
    )
    result = await world.pipeline(settings).run(GOAL)
    thesis_record = result.stages[0]
    assert thesis_record.stage == "thesis" and thesis_record.streamed is False
    assert world.personas.called("thesis")[0].params.max_tokens == 77
    started = world.sink.of_type(TaskStarted)[0]
    assert started.flags["thesis_streaming"] is False


async def test_evidence_event_reports_what_was_gathered() -> None:
    world = make_world(gatherer=ScriptedGatherer(evidence_of(3)))
    await world.pipeline().run(GOAL)
    [gathered] = world.sink.of_type(EvidenceGathered)
    assert gathered.passages == 3 and gathered.from_cache is False


async def test_parallel_prep_prepares_the_antithesis_during_the_thesis() -> None:
    world = make_world()
    settings = pipeline_settings(parallel_prep={"enabled": True})
    result = await world.pipeline(settings).run(GOAL)
    assert [s.stage for s in result.stages] == ["thesis", "antithesis", "synthesis", "judge"]
    antithesis = world.personas.called("antithesis")[0].messages[-1].content
    assert "[E1]" in antithesis and "Adopt a modular monolith first." in antithesis
    assert world.sink.of_type(TaskStarted)[0].flags["parallel_prep"] is True


async def test_cancelling_a_run_records_it_as_cancelled() -> None:
    world = make_world(
        first_chunk_delay_s=lambda r: 5.0 if r.context.persona == "antithesis" else 0.0
    )
    task = asyncio.create_task(world.pipeline().run(GOAL))
    while not world.personas.called("thesis"):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the antithesis is now waiting on its provider
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [error] = world.sink.of_type(ErrorEvent)
    assert error.kind == "cancelled" and error.stage == "antithesis"
    assert world.sink.of_type(TaskFinished)[-1].success is False


@pytest.mark.parametrize("async_thesis", [True, False])
async def test_a_prompt_too_long_is_an_input_error_not_an_async_fallback(
    async_thesis: bool,
) -> None:
    too_long = BadRequest(
        "prompt is 9000 tokens; the local context holds 2048 (raise local.n_ctx)",
        provider="fake",
        model="model",
        status_code=400,
    )

    def thesis(request: Request) -> str:
        raise too_long

    world = make_world(Personas(thesis=thesis))
    settings = pipeline_settings(async_thesis={"enabled": async_thesis})
    with pytest.raises(BadRequest):
        await world.pipeline(settings).run(GOAL)
    assert world.sink.of_type(AsyncFallback) == []
    [error] = world.sink.of_type(ErrorEvent)
    assert (error.kind, error.stage) == ("input_error", "thesis")
    assert "prompt is 9000 tokens" in error.message
    [finished] = world.sink.of_type(TaskFinished)
    assert not finished.success
    # asked once: retrying the thesis sequentially, with evidence added, cannot fit either
    assert len(world.personas.called("thesis")) == 1


async def test_an_input_error_from_evidence_is_recorded_as_one() -> None:
    class Refusing(ScriptedGatherer):
        async def gather(self, goal: str, documents: object) -> object:  # type: ignore[override]
            raise InputError("docs/missing.md: no such file")

    world = make_world(gatherer=Refusing())
    with pytest.raises(InputError):
        await world.pipeline().run(GOAL)
    [error] = world.sink.of_type(ErrorEvent)
    assert (error.kind, error.stage) == ("input_error", "evidence")
    assert world.sink.of_type(AsyncFallback) == []
