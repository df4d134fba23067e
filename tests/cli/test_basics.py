import json
from pathlib import Path

import pytest

from helios import __version__
from tests.cli.conftest import RunCli


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_version(run_cli: RunCli) -> None:
    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"helios {__version__}"


def test_empty_prompt(run_cli: RunCli) -> None:
    result = run_cli("ask", "   ")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "prompt is empty")


def test_unknown_model(run_cli: RunCli) -> None:
    result = run_cli("ask", "hi", "--model", "gpt-99")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "unknown model 'gpt-99'")


def test_bad_config_names_file_and_key(run_cli: RunCli, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("defualt_model: sonnet\n")
    result = run_cli("--config", str(config), "ask", "hi")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, str(config), "defualt_model", "unknown key")


def test_a_misspelt_environment_variable_is_an_error(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELIOS_DEFAULT_MODELL", "sonnet")
    result = run_cli("models")
    assert result.exit_code == 2
    assert_one_line_error(
        result.stderr,
        "environment variable HELIOS_DEFAULT_MODELL: not a Helios setting",
        "did you mean HELIOS_DEFAULT_MODEL?",
    )


def test_missing_config_file(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "absent.yaml"), "models")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "absent.yaml", "not found")


def test_usage_errors_exit_2_without_traceback(run_cli: RunCli) -> None:
    result = run_cli("ask", "hi", "--temperature", "9")
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert "--temperature" in result.stderr


def test_models_lists_catalogue_and_provider_state(
    run_cli: RunCli, monkeypatch: object, tmp_path: Path
) -> None:
    (tmp_path / "helios.yaml").write_text(
        "providers:\n  vllm: {kind: openai, base_url: 'http://127.0.0.1:1/v1', api_key: x}\n"
    )
    result = run_cli("models", "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    ids = {model["id"] for model in payload["models"]}
    assert {"claude-sonnet-5-5", "gpt-5", "gemini-2.5-flash", "smollm2-135m-instruct"} <= ids
    assert payload["providers"]["vllm"] == "ready"
    assert payload["default_model"] == "local"
    local = {model["id"]: model["status"] for model in payload["local_models"]}
    assert set(local) == {
        "qwen2.5-coder-1.5b-instruct",
        "qwen2.5-coder-0.5b-instruct",
        "smollm2-135m-instruct",
    }
    assert local["smollm2-135m-instruct"].startswith("ready: ")
    # the default's parts (make install) are assembled on first use, not by listing them
    assert "on first use" in local["qwen2.5-coder-1.5b-instruct"]
    table = run_cli("models")
    assert table.exit_code == 0
    assert "claude-sonnet-5-5" in table.stdout and "provider vllm: ready" in table.stdout
