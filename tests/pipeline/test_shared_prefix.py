"""Every dialectic persona's prompt opens with the same long part (L1 prompt caching)."""

from helios.messages import Request
from tests.pipeline.helpers import FAILING_VERDICT, Personas, make_world
from tests.pipeline.helpers import pipeline_settings as settings_of

GOAL = "Should a five-person startup adopt microservices?"


async def test_every_call_of_a_run_shares_the_system_prefix_and_cache_key() -> None:
    replies = iter(["not json", FAILING_VERDICT, "not json", FAILING_VERDICT])
    drafts = iter(["No citation here.", "Start with a monolith [E1]."])
    world = make_world(
        Personas(judge=lambda _: next(replies), synthesis=lambda _: next(drafts)), cache=False
    )
    # sequential thesis: it has the evidence too, so all of its calls share the prefix
    await world.pipeline(settings_of(async_thesis={"enabled": False})).run(GOAL)
    calls = [request for _, _, request in world.personas.calls]
    personas = [request.context.persona for request in calls]
    # pass 1 fails the citation check (no judge), pass 2 is judged with one repair turn
    assert personas == ["thesis", "antithesis", "synthesis", "synthesis", "judge", "judge"]
    systems = {request.system for request in calls}
    assert len(systems) == 1
    [system] = systems
    assert GOAL in (system or "") and "[E1]" in (system or "") and "[E2]" in (system or "")
    # the persona-specific part comes after the shared one: in the user turns
    assert all("Your role" in request.messages[0].content for request in calls)
    keys = {request.metadata["prompt_cache_key"] for request in calls}
    assert len(keys) == 1


async def test_runs_of_different_goals_get_different_cache_keys() -> None:
    world = make_world(cache=False)
    await world.pipeline().run(GOAL)
    await world.pipeline().run("Should we rewrite the billing service?")
    keys = {r.metadata["prompt_cache_key"] for _, _, r in world.personas.calls}
    assert len(keys) == 2


def _judge_prompts(calls: list[Request]) -> list[str]:
    return [r.messages[0].content for r in calls if r.context.persona == "judge"]


async def test_an_uncited_answer_is_not_sent_to_the_judge() -> None:
    world = make_world(Personas(synthesis="An answer without citations."), cache=False)
    result = await world.pipeline().run(GOAL)
    assert _judge_prompts([r for _, _, r in world.personas.calls]) == []
    assert result.accepted_pass is None
    first = result.passes[0].gate
    assert not first.verdict.judged and first.evidence.problems
    feedback = first.feedback("An answer without citations.")
    assert "cites no evidence" in feedback and "judge" not in feedback
    assert first.verdict.reasons == ["not judged: the evidence check failed first"]
