import importlib
import json

import pytest
import typer

from helios.cli import route as route_module
from tests.cli.conftest import RunCli


@pytest.fixture
def run_route(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """``helios route`` registered the way the integrator will (if it is not yet)."""
    app = importlib.import_module("helios.cli.app").app
    if "route" not in {command.name for command in app.registered_commands}:
        monkeypatch.setattr(app, "registered_commands", [*app.registered_commands])
        app.command("route")(route_module.route)
    return run_cli


def test_route_explains_a_decision(run_route: RunCli) -> None:
    result = run_route("route", "What is the capital of France?")
    assert result.exit_code == 0, result.stderr
    for expected in (
        "complexity score",
        "length",
        "task_type",
        "contribution",
        "thresholds",
        "intent: lookup (cue 'what",
        "score picks: fast (score",
        "budget: no budget configured",
        "chosen: local ->",
        "fallbacks: none",
    ):
        assert expected in result.stdout  # fmt: skip


HARD = "Prove step by step why the integral of x^2 from 0 to 3 equals 9, and compare methods."


def test_route_json_for_a_hard_prompt(run_route: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")  # the strong and fast tiers can run
    result = run_route(
        "route",
        HARD, "--task-type", "reasoning", "--persona", "synthesis", "--max-tokens", "3000",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["tier"] == "strong"
    assert payload["model"] == "anthropic:claude-opus-5-5"
    assert [hop["tier"] for hop in payload["fallbacks"]] == ["fast", "local"]
    assert payload["budget"] == "no budget configured"
    assert payload["thresholds"] == {"strong_above": 0.45, "fast_above": 0.1}
    assert (payload["intent"], payload["cue"]) == ("proof", "prove")
    assert payload["rule"].startswith("score ") and "> strong_above 0.45" in payload["rule"]
    contributions = sum(f["contribution"] for f in payload["features"].values())
    assert payload["score"] == pytest.approx(min(1.0, contributions), abs=1e-3)


def test_offline_the_route_falls_to_a_model_that_can_run(
    run_route: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    args = ("route", HARD, "--task-type", "reasoning", "--max-tokens", "3000", "--json")
    payload = json.loads(run_route(*args).stdout)
    assert payload["scored_tier"] == "strong"
    assert (payload["tier"], payload["model"]) == ("local", "llamacpp:smollm2-135m-instruct")
    assert any("no API key" in line for line in payload["skipped"])
    assert payload["fallbacks"] == []


def test_route_refuses_an_empty_prompt(run_route: RunCli) -> None:
    result = run_route("route", "  ")
    assert result.exit_code == 2
    assert "empty" in result.stderr


def test_route_is_a_typer_command() -> None:
    app = typer.Typer()
    app.command("route")(route_module.route)
