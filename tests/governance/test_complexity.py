from helios.config.router import RouterSettings
from helios.governance.complexity import FEATURES, score
from helios.messages import CallContext, Request, SamplingParams

TRIVIAL = Request.of("What is the capital of France?")
CODING = Request.of(
    "Write a Python function that parses an ISO date and returns a datetime; add unit tests.\n"
    "```python\ndef parse(text: str) -> datetime:\n    return None\n```",
    task_type="code",
)
PROOF = Request.of(
    "Prove step by step that the integral of x^2 from 0 to 3 equals 9, i.e. "
    "$\\int_0^3 x^2 dx = 9$. Explain why each step holds, compare the Riemann-sum "
    "derivation with the antiderivative one and discuss the trade-offs. " * 3,
    task_type="reasoning",
    params=SamplingParams(max_tokens=3000),
)


def test_trivial_below_coding_below_proof() -> None:
    assert score(TRIVIAL).score < score(CODING).score < score(PROOF).score


def test_default_thresholds_pick_the_expected_tiers() -> None:
    assert score(TRIVIAL).tier == "fast"
    assert score(CODING).tier == "fast"
    assert score(PROOF).tier == "strong"
    assert (score(TRIVIAL).intent, score(PROOF).intent) == ("lookup", "proof")


def test_synthesis_weighs_more_than_thesis() -> None:
    prompt = "Assess the evidence on remote work productivity."
    thesis = score(Request.of(prompt, context=CallContext(persona="thesis")))
    antithesis = score(Request.of(prompt, context=CallContext(persona="antithesis")))
    synthesis = score(Request.of(prompt, context=CallContext(persona="synthesis")))
    judge = score(Request.of(prompt, context=CallContext(persona="judge")))
    assert thesis.score < antithesis.score < synthesis.score
    assert thesis.score < judge.score


def test_features_are_bounded_and_complete() -> None:
    for request in (TRIVIAL, CODING, PROOF):
        result = score(request)
        assert set(result.features) == set(FEATURES)
        assert all(0.0 <= value <= 1.0 for value in result.features.values())
        assert 0.0 <= result.score <= 1.0
        assert result.score == min(1.0, round(sum(result.contributions.values()), 4))


def test_signals_light_up_their_features() -> None:
    assert score(CODING).features["code"] > 0.5
    assert score(PROOF).features["maths"] > 0.5
    assert score(PROOF).features["intent"] == 1.0
    assert score(TRIVIAL).features["code"] == 0.0
    assert score(TRIVIAL).features["intent"] == 0.0
    essay = score(Request.of("Write an essay on the history of Rome."))
    assert essay.features["output"] > 0.5


def test_longer_prompts_score_higher() -> None:
    short = score(Request.of("Summarise: the cat sat."))
    long = score(Request.of("Summarise: " + "the cat sat on the mat. " * 400))
    assert long.features["length"] > short.features["length"]
    assert long.score > short.score


def test_weights_come_from_settings() -> None:
    settings = RouterSettings(feature_weights={"code": 1.0})
    result = score(CODING, settings)
    assert result.contributions["task_type"] == 0.0
    assert result.score == result.features["code"]
    no_proofs = RouterSettings(intent_weights={"proof": 0.0})
    assert score(PROOF, no_proofs).features["intent"] == 0.0
    heavy_thesis = RouterSettings(persona_weights={"thesis": 1.0, "synthesis": 0.0})
    prompt = "Assess the evidence."
    assert (
        score(Request.of(prompt, context=CallContext(persona="thesis")), heavy_thesis).score
        > score(Request.of(prompt, context=CallContext(persona="synthesis")), heavy_thesis).score
    )


def test_deterministic() -> None:
    assert score(PROOF) == score(PROOF)


def test_thresholds_must_be_ordered() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        RouterSettings(strong_above=0.2, fast_above=0.5)
