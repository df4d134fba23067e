import pytest

from helios.messages import Message
from helios.pipeline.gate import GateResult, JudgeVerdict, check_evidence, judge, parse_verdict


def test_citations_must_exist_and_be_present() -> None:
    ok = check_evidence("Monolith first [E1], split later [E2][E1].", ["E1", "E2", "E3"])
    assert ok.ok and ok.cited == ("E1", "E2")
    missing = check_evidence("No citations at all.", ["E1"])
    assert not missing.ok and "cites no evidence" in missing.problems[0]
    unknown = check_evidence("See [E9].", ["E1", "E2", "E10"])
    assert not unknown.ok
    assert "E9" in unknown.problems[0] and "E1, E2, E10" in unknown.problems[0]


def test_without_evidence_citations_are_wrong_and_none_is_fine() -> None:
    fine = check_evidence("A plain answer.", [])
    assert fine.ok and fine.evidence_absent
    wrong = check_evidence("As [E1] shows.", [])
    assert not wrong.ok and "no evidence was provided" in wrong.problems[0]


@pytest.mark.parametrize(
    "text",
    [
        '{"pass": true, "score": 0.8, "reasons": ["ok"]}',
        'Sure!\n```json\n{"pass": true, "score": 0.8, "reasons": ["ok"]}\n```',
        'Draft {not json} then {"pass": true, "score": 0.8}',
    ],
)
def test_verdicts_are_found_inside_prose(text: str) -> None:
    verdict = parse_verdict(text)
    assert verdict is not None and verdict.passed and verdict.score == 0.8
    assert verdict.raw == text


@pytest.mark.parametrize(
    "text",
    ["no json", '{"pass": "maybe", "score": 0.5}', '{"pass": true, "score": 3}', "[1, 2]"],
)
def test_invalid_verdicts(text: str) -> None:
    assert parse_verdict(text) is None


async def test_judge_repairs_once_then_gives_up() -> None:
    asked: list[tuple[Message, ...]] = []

    async def call(followup: tuple[Message, ...]) -> str:
        asked.append(followup)
        return "still not json"

    verdict = await judge(call)
    assert len(asked) == 2 and asked[0] == ()
    assert asked[1][0] == Message(role="assistant", content="still not json")
    assert not verdict.valid and not verdict.passed and verdict.raw == "still not json"


def test_gate_needs_evidence_judge_and_score() -> None:
    evidence = check_evidence("x [E1]", ["E1"])
    good = JudgeVerdict(passed=True, score=0.9)
    low = JudgeVerdict(passed=True, score=0.3)
    assert GateResult(1, evidence, good, min_score=0.5).passed
    assert not GateResult(1, evidence, low, min_score=0.5).passed
    bad_evidence = check_evidence("x", ["E1"])
    result = GateResult(1, bad_evidence, good, min_score=0.5)
    assert not result.passed
    feedback = result.feedback("the draft")
    assert "cites no evidence" in feedback and "the draft" in feedback
