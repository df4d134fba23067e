"""orchestration.single_call: thesis, antithesis and synthesis in one model call."""

import pytest

from helios.ledger.events import SecondPass, TaskStarted
from helios.pipeline.single_call import split_dialectic
from tests.pipeline.helpers import Personas, make_world, pipeline_settings

GOAL = "Should a five-person startup adopt microservices?"
ONE_CALL = pipeline_settings(single_call={"enabled": True})


@pytest.mark.parametrize(
    "text",
    [
        "THESIS:\nT.\nANTITHESIS:\nA [E2].\nSYNTHESIS:\nS [E1].",
        "**Thesis:** T.\n\n**Antithesis:** A [E2].\n\n### Synthesis\nS [E1].",
        "thesis: T.\nAntithesis: A [E2].\nSynthesis:\nS [E1].",
    ],
)
def test_the_three_sections_are_found_whatever_the_markup(text: str) -> None:
    sections = split_dialectic(text)
    assert (sections.thesis, sections.antithesis, sections.synthesis) == (
        "T.",
        "A [E2].",
        "S [E1].",
    )
    assert sections.complete


def test_a_reply_without_headings_is_all_synthesis() -> None:
    text = "Synthesis of services is hard.\nUse a monolith [E1]."
    sections = split_dialectic(text)
    assert sections.synthesis == text and not sections.complete


async def test_one_call_then_the_gate() -> None:
    world = make_world(cache=False)
    result = await world.pipeline(ONE_CALL).run(GOAL)
    personas = [request.context.persona for _, _, request in world.personas.calls]
    assert personas == ["dialectic", "judge"]
    assert result.accepted_pass == 1
    assert result.answer.startswith("Recommendation: a modular monolith.")
    assert "THESIS" not in result.answer
    assert world.sink.of_type(TaskStarted)[0].flags["single_call"] is True
    assert [record.stage for record in result.stages] == ["dialectic", "judge"]


async def test_a_failed_gate_gets_a_plain_synthesis_with_feedback() -> None:
    world = make_world(Personas(dialectic="THESIS:\nT.\nANTITHESIS:\nA.\nSYNTHESIS:\nNo cite."))
    result = await world.pipeline(ONE_CALL).run(GOAL)
    personas = [request.context.persona for _, _, request in world.personas.calls]
    assert personas == ["dialectic", "synthesis", "judge"]
    [second] = world.personas.called("synthesis")
    prompt = second.messages[-1].content
    assert "Thesis:\nT." in prompt and "Antithesis:\nA." in prompt
    assert "cites no evidence" in prompt
    assert [e.pass_number for e in world.sink.of_type(SecondPass)] == [2]
    assert result.accepted_pass == 2 and [p.number for p in result.passes] == [1, 2]
