from pathlib import Path

import pytest

from helios.config.providers import ProviderSettings
from helios.config.settings import Settings, load_settings
from helios.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "HELIOS_DEFAULT_MODEL",
        "HELIOS_LOCAL__N_CTX",
        "OPENAI_API_KEY",
        "MY_KEY",
        "THESIS_STREAMING",
        "ANTITHESIS_STREAMING",
        "SYNTHESIS_STREAMING",
        "RESPONSE_CACHE_ENABLED",
        "HELIOS_CACHE__ENABLED",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_without_a_file() -> None:
    settings = load_settings()
    assert settings.default_model == "local"
    assert settings.local.n_ctx == 4096


def test_precedence_defaults_file_env_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "helios.yaml").write_text("default_model: sonnet\nlocal: {n_ctx: 1024}\n")
    assert load_settings().default_model == "sonnet"
    monkeypatch.setenv("HELIOS_DEFAULT_MODEL", "haiku")
    settings = load_settings()
    assert settings.default_model == "haiku"
    assert settings.local.n_ctx == 1024  # the file still counts for keys env leaves alone
    assert load_settings(overrides={"default_model": "opus"}).default_model == "opus"


def test_nested_env_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELIOS_LOCAL__N_CTX", "4096")
    assert load_settings().local.n_ctx == 4096


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "custom.yaml"
    config.write_text("local:\n  n_ctxx: 10\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert str(info.value) == f"config file {config}: local.n_ctxx: unknown key"


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    config = tmp_path / "helios.yaml"
    config.write_text("providers:\n  openai:\n    timeout_s: soon\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    message = str(info.value)
    assert "providers.openai.timeout_s" in message
    assert str(config) in message
    assert "valid number" in message


def test_bad_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELIOS_LOCAL__N_CTX", "big")
    with pytest.raises(ConfigError, match="environment variable HELIOS_LOCAL__N_CTX"):
        load_settings()


@pytest.mark.parametrize(
    ("content", "expected"),
    [("[1, 2]", "mapping"), ("a: [", "not valid YAML")],
)
def test_malformed_files(tmp_path: Path, content: str, expected: str) -> None:
    config = tmp_path / "helios.yaml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=expected):
        load_settings(config)


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    config = tmp_path / "helios.yaml"
    config.write_text("")
    assert load_settings(config) == Settings()


def test_api_keys_come_from_the_usual_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("MY_KEY", "sk-custom")
    assert ProviderSettings().key("openai") == "sk-env"
    assert ProviderSettings(kind="openai", api_key_env="MY_KEY").key("vllm") == "sk-custom"
    # a custom endpoint never receives the provider's own key
    assert ProviderSettings(kind="openai").key("vllm") is None
    assert "OPENAI_API_KEY" not in ProviderSettings(kind="openai").missing_key_message("vllm")
    monkeypatch.delenv("OPENAI_API_KEY")
    assert ProviderSettings().key("openai") is None


def test_reference_design_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THESIS_STREAMING", "false")
    monkeypatch.setenv("SYNTHESIS_STREAMING", "true")
    monkeypatch.setenv("RESPONSE_CACHE_ENABLED", "0")
    settings = load_settings()
    assert settings.personas["thesis"].streaming is False
    assert settings.personas["synthesis"].streaming is True
    assert settings.cache.enabled is False
    # the Helios name wins over the alias
    monkeypatch.setenv("HELIOS_CACHE__ENABLED", "true")
    assert load_settings().cache.enabled is True


def test_bad_alias_value_names_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTITHESIS_STREAMING", "sometimes")
    with pytest.raises(ConfigError, match="environment variable ANTITHESIS_STREAMING"):
        load_settings()


# -- HELIOS_* variables that name no setting ----------------------------------------------------
@pytest.mark.parametrize(
    ("variable", "message"),
    [
        (
            "HELIOS_DEFAULT_MODELL",
            "environment variable HELIOS_DEFAULT_MODELL: not a Helios setting"
            " (did you mean HELIOS_DEFAULT_MODEL?)",
        ),
        (
            "HELIOS_CAHCE__ENABLED",
            "environment variable HELIOS_CAHCE__ENABLED: not a Helios setting"
            " (did you mean HELIOS_CACHE__ENABLED?)",
        ),
        (
            "HELIOS_DATA_DRI",
            "environment variable HELIOS_DATA_DRI: not a Helios setting"
            " (did you mean HELIOS_DATA_DIR?)",
        ),
        (
            "HELIOS_ZZZ",
            "environment variable HELIOS_ZZZ: not a Helios setting"
            " (settings are HELIOS_<KEY>, nested keys joined with '__')",
        ),
        (
            "helios_default_modell",  # read case-insensitively, so checked the same way
            "environment variable helios_default_modell: not a Helios setting"
            " (did you mean HELIOS_DEFAULT_MODEL?)",
        ),
    ],
)
def test_an_unknown_helios_variable_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, message: str
) -> None:
    monkeypatch.setenv(variable, "1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == message


def test_every_unknown_variable_is_named_at_once() -> None:
    environ = {"HELIOS_ONE": "1", "HELIOS_TWO": "2", "PATH": "/bin"}
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    lines = str(info.value).splitlines()
    assert lines[0] == "invalid settings:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "environment variable HELIOS_ONE",
        "environment variable HELIOS_TWO",
    ]


def test_variables_helios_reads_itself_are_not_settings_and_are_allowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in (
        "HELIOS_DATA_DIR",
        "HELIOS_REQUIRE_SERVICES",
        "HELIOS_TEST_REDIS_URL",
        "HELIOS_TEST_ANYTHING_NEW",
    ):
        monkeypatch.setenv(variable, str(tmp_path))
    monkeypatch.setenv("HELIOS_SERVER__PUBLIC_METRICS", "true")
    monkeypatch.setenv("NOT_HELIOS_AT_ALL", "1")
    assert load_settings().server.public_metrics is True


def test_a_nested_unknown_key_is_refused_by_its_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELIOS_SERVER__PUBLIC_METRIC", "true")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "environment variable HELIOS_SERVER__PUBLIC_METRIC: server.public_metric: unknown key"
    )


def test_allowed_hosts_are_host_names(tmp_path: Path) -> None:
    config = tmp_path / "helios.yaml"
    config.write_text("server:\n  allowed_hosts: [Helios.Internal, '[::1]', 10.0.0.7]\n")
    assert load_settings(config).server.allowed_hosts == ["helios.internal", "[::1]", "10.0.0.7"]
    config.write_text("server:\n  allowed_hosts: ['http://evil.example:80/']\n")
    with pytest.raises(ConfigError, match=r"server\.allowed_hosts: .*not a host name"):
        load_settings(config)
