import pytest

from helios.catalog import Catalog
from helios.config.providers import ProviderSettings
from helios.config.settings import Settings
from helios.errors import ConfigError, UnknownModel
from helios.providers.base import Provider
from helios.providers.function import FunctionProvider
from helios.providers.registry import ProviderRegistry


def registry(**settings: object) -> ProviderRegistry:
    return ProviderRegistry(Settings(**settings), Catalog.load())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", ("llamacpp", "smollm2-135m-instruct")),
        ("local", ("llamacpp", "smollm2-135m-instruct")),
        ("sonnet", ("anthropic", "claude-sonnet-5-5")),
        ("anthropic:sonnet", ("anthropic", "claude-sonnet-5-5")),
        ("anthropic:claude-future-9", ("anthropic", "claude-future-9")),
        ("openai:gpt-5-mini", ("openai", "gpt-5-mini")),
        ("gemini-2.5-flash", ("gemini", "gemini-2.5-flash")),
        ("llamacpp:/models/qwen.gguf", ("llamacpp", "/models/qwen.gguf")),
    ],
)
def test_parse(spec: str, expected: tuple[str, str]) -> None:
    assert registry().parse(spec) == expected


def test_default_model_and_aliases_come_from_settings() -> None:
    reg = registry(default_model="fast-one", aliases={"fast-one": "cheap", "cheap": "haiku"})
    assert reg.parse("") == ("anthropic", "claude-haiku-5-5")


def test_alias_loops_are_reported() -> None:
    with pytest.raises(ConfigError, match="loop"):
        registry(aliases={"a": "b", "b": "a"}).parse("a")


def test_custom_endpoint_names_work_as_prefixes() -> None:
    reg = registry(providers={"vllm": ProviderSettings(kind="openai", base_url="http://x/v1")})
    # a model id containing a colon keeps everything after the first one
    assert reg.parse("vllm:llama3:8b") == ("vllm", "llama3:8b")
    assert "vllm" in reg.provider_names


def test_unknown_spec_lists_the_providers() -> None:
    with pytest.raises(UnknownModel) as info:
        registry().parse("gpt-99")
    assert "gpt-99" in str(info.value) and "anthropic" in str(info.value)


def test_empty_model_after_prefix() -> None:
    with pytest.raises(UnknownModel):
        registry().parse("openai:")


def test_added_providers_resolve_and_are_cached() -> None:
    reg = registry()
    double = FunctionProvider(lambda r: "hi", name="fake", model="m1")
    reg.add(double)
    assert reg.resolve("fake:m1") is double
    with pytest.raises(UnknownModel, match="no model 'm2'"):
        reg.resolve("fake:m2")


def test_registered_factories_are_called_once_per_model() -> None:
    reg = registry()
    built: list[str] = []

    def factory(name: str, model: str, settings: Settings) -> Provider:
        built.append(model)
        return FunctionProvider(lambda r: "x", name=name, model=model)

    reg.register_factory("mock", factory)
    first = reg.resolve("mock:a")
    assert reg.resolve("mock:a") is first
    reg.resolve("mock:b")
    assert built == ["a", "b"]


def test_endpoint_of_unknown_kind() -> None:
    reg = ProviderRegistry(
        Settings.model_construct(
            providers={"odd": ProviderSettings.model_construct(kind="nope")},  # type: ignore[arg-type]
            aliases={},
            default_model="local",
        ),
        Catalog.load(),
    )
    with pytest.raises(UnknownModel, match="kind 'nope'"):
        reg.resolve("odd:model")
