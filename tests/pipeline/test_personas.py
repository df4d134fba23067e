import pytest

from helios.config.orchestration import PersonaSettings
from helios.config.settings import Settings
from helios.errors import ConfigError
from helios.pipeline.personas import load_personas

VALUES = {
    "goal": "g",
    "evidence": "e",
    "thesis": "t",
    "antithesis": "a",
    "feedback": "",
    "draft": "d",
}


def test_shipped_personas_render_with_the_pipeline_values() -> None:
    personas = load_personas(Settings())
    assert {"thesis", "antithesis", "synthesis", "judge"} <= set(personas)
    for persona in personas.values():
        system, prompt = persona.render(VALUES)
        assert system and prompt
    assert personas["judge"].response_schema is not None
    assert personas["judge"].streaming is False


def test_overrides_change_only_what_they_set() -> None:
    settings = Settings(
        personas={"thesis": PersonaSettings(model="sonnet", temperature=0.3, streaming=False)}
    )
    thesis = load_personas(settings)["thesis"]
    assert thesis.model == "sonnet" and thesis.temperature == 0.3 and not thesis.streaming
    assert thesis.system == load_personas(Settings())["thesis"].system


def test_a_new_persona_needs_no_code() -> None:
    settings = Settings(
        personas={"critic": PersonaSettings(system="You criticise.", prompt="Goal: {goal}")}
    )
    critic = load_personas(settings)["critic"]
    request = critic.request(VALUES, model="local")
    assert request.context.persona == "critic" and request.messages[-1].content == "Goal: g"


def test_a_new_persona_without_a_prompt_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"personas\.critic.*needs system and prompt"):
        load_personas(Settings(personas={"critic": PersonaSettings(system="x")}))


def test_unknown_placeholders_name_the_persona() -> None:
    settings = Settings(personas={"thesis": PersonaSettings(prompt="Goal: {gaol}")})
    with pytest.raises(ConfigError, match=r"persona 'thesis'.*\{gaol\}"):
        load_personas(settings)["thesis"].render(VALUES)


def test_model_resolution_order() -> None:
    settings = Settings(default_model="local", tiers={"strong": "opus", "fast": "haiku"})
    persona = load_personas(Settings(personas={"thesis": PersonaSettings(tier="fast")}))["thesis"]
    assert persona.model_spec(settings) == "haiku"
    assert persona.model_spec(settings, override="gpt") == "gpt"
    assert load_personas(Settings())["thesis"].model_spec(settings) == "local"
