"""The calibrated policy: canonical prompts of each kind go to the tier they should, the
instruction is read and the attached material is not, the knobs work, bad knobs are named."""

from pathlib import Path

import pytest

from helios.config.router import INTENTS, RouterSettings
from helios.config.settings import load_settings
from helios.errors import ConfigError
from helios.governance.complexity import score
from helios.governance.cues import CueTable
from helios.governance.intents import CUED_INTENTS, OTHER, instruction_of
from helios.messages import CallContext, Request

REPORT = (
    "Incident report. Between 13:05 and 14:40 the checkout failed for 18 percent of requests. "
    "The pool size was raised without considering the database limit. Follow-ups: prove the "
    "new check works, evaluate a connection proxy and analyse the trade-offs of each fix. "
) * 12

FAST = {
    "chat": "Hi, what's the time in Paris?",
    "greeting": "Hello! How are you today?",
    "lookup": "What is the capital of Australia?",
    "translation": "Translate to French: The meeting has been moved to Thursday at 3 pm.",
    "classification": "Is this review positive or negative? 'The battery died in two days.'",
    "rewrite": "Fix the grammar: 'me and him goes to the shop yesterday'.",
    "simple code": "Write a Python function that reverses a string.",
    "routine maths": "Solve for x: 3x + 7 = 22.",
    "long summary": f"Summarise this report in three bullet points.\n\n{REPORT}",
    "long extraction": f"{REPORT}\n\nList every time mentioned in the report above.",
}
STRONG = {
    "short design and proof": (
        "Design a Byzantine fault-tolerant consensus protocol for 7 replicas and prove it is safe."
    ),
    "short proof": "Prove that there are infinitely many primes.",
    "system design": "Design a URL shortener that handles 100,000 writes per second.",
    "long-form": "Write an in-depth essay on the economic effects of remote work.",
    "reasoning": (
        "If we double the number of servers, why might our p99 latency get worse? Walk "
        "through the mechanisms."
    ),
    "hard code": (
        "Implement a lock-free multi-producer queue in Rust and explain why it is linearizable."
    ),
    "analysis of a long document": (
        f"{REPORT}\n\nWrite a thorough root-cause analysis of the incident above."
    ),
}


@pytest.mark.parametrize("kind", sorted(FAST))
def test_routine_prompts_go_to_the_fast_tier(kind: str) -> None:
    result = score(Request.of(FAST[kind]))
    assert result.tier == "fast", (kind, result)


@pytest.mark.parametrize("kind", sorted(STRONG))
def test_hard_prompts_go_to_the_strong_tier_however_short(kind: str) -> None:
    result = score(Request.of(STRONG[kind]))
    assert result.tier == "strong", (kind, result)


def test_the_material_does_not_speak_for_the_instruction() -> None:
    # REPORT says "prove", "evaluate", "analyse", "trade-offs": none of it is the task.
    summary = score(Request.of(FAST["long summary"]))
    assert summary.intent == "summarisation" and summary.cue == "summar*"
    assert instruction_of(FAST["long summary"]) == "Summarise this report in three bullet points."
    tail = instruction_of(FAST["long extraction"])
    assert tail == "List every time mentioned in the report above."
    no_blank_line = "Translate this. " + "word " * 400 + "Thanks."
    assert instruction_of(no_blank_line).startswith("Translate this.")
    assert instruction_of(no_blank_line).endswith("Thanks.")


def test_local_takes_only_the_intents_the_settings_name() -> None:
    hello = Request.of("Hello! How are you today?")
    assert score(hello).tier == "fast"
    chat_locally = RouterSettings(local_intents=["chat"], fast_above=0.1)
    local = score(hello, chat_locally)
    assert local.tier == "local" and "local_intents" in local.rule
    lookup = Request.of("What is the capital of Australia?")
    assert score(lookup, chat_locally).tier == "fast"  # a lookup is not a chat
    too_hard = RouterSettings(local_intents=["chat"], fast_above=0.0)
    assert score(hello, too_hard).tier == "fast"


def test_intent_weights_and_thresholds_are_settings() -> None:
    design = Request.of(STRONG["system design"])
    assert score(design).intent == "design"
    flat = RouterSettings(intent_weights={"design": 0.0})
    assert score(design, flat).tier == "fast"
    assert score(design, RouterSettings(strong_above=1.0)).tier == "fast"


def test_personas_and_task_types_still_weigh() -> None:
    prompt = "Assess the evidence on remote work productivity."
    thesis = score(Request.of(prompt, context=CallContext(persona="thesis")))
    synthesis = score(Request.of(prompt, context=CallContext(persona="synthesis")))
    assert thesis.score < synthesis.score
    general = score(Request.of("Sort these numbers: 3, 1, 2."))
    declared = score(Request.of("Sort these numbers: 3, 1, 2.", task_type="reasoning"))
    assert general.score < declared.score


def test_every_intent_but_other_has_cues() -> None:
    assert set(CUED_INTENTS) == set(INTENTS) - {OTHER}
    assert score(Request.of("Lorem ipsum dolor sit amet.")).intent == OTHER


def test_cue_table_matches_phrases_stems_and_starts() -> None:
    table = CueTable.of({"a": ("show that", "summar*", "^hi"), "b": ("hi", "summary")})
    found = table.find("Hi! Please show that the summary holds; hi again.")
    assert found == {"a": ["hi", "show that", "summar*"], "b": ["hi", "summary"]}
    assert table.find("Oh hi") == {"b": ["hi"]}  # "^hi" only counts at the start
    with pytest.raises(ValueError, match="1 to 4 words"):
        CueTable.of({"a": ("one two three four five",)})


@pytest.mark.parametrize(
    ("router", "named"),
    [
        ({"local_intents": ["gossip"]}, "router.local_intents.0"),
        ({"intent_weights": {"proof": 1.5}}, "router.intent_weights.proof"),
        ({"intent_weights": {"poetry": 0.5}}, "router.intent_weights.poetry"),
        ({"feature_weights": {"vibes": 0.5}}, "router.feature_weights.vibes"),
        ({"persona_weights": {"judge": -1}}, "router.persona_weights.judge"),
        ({"readiness_cache_s": -1}, "router.readiness_cache_s"),
    ],
)
def test_invalid_router_settings_name_the_key(
    tmp_path: Path, router: dict[str, object], named: str
) -> None:
    import yaml

    config = tmp_path / "helios.yaml"
    config.write_text(yaml.safe_dump({"router": router}), encoding="utf-8")
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")) as info:
        load_settings(config, environ={})
    assert str(config) in str(info.value)
