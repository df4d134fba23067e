"""``helios budget``: the hint without budgets, the table and JSON with them."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from helios.cli import budget as budget_cli
from helios.cli.context import CliContext
from helios.config.settings import load_settings
from helios.messages import Request, Usage
from helios.runtime import Runtime


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _options(ctx: typer.Context) -> None:
        ctx.obj = CliContext()

    app.command("budget")(budget_cli.budget)
    return app


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no stray helios.yaml
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def with_budgets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A helios.yaml in the working directory (the runner's tmp_path) with two windows."""
    section = {
        "enabled": True,
        "path": str(tmp_path / "gov.sqlite3"),
        "budgets": [
            {
                "account": "max",
                "windows": [
                    {"name": "5h", "kind": "session", "limit": 1000},
                    {"name": "week", "kind": "sliding", "length_s": 604800, "limit": 5000},
                ],
            }
        ],
    }
    (tmp_path / "helios.yaml").write_text(yaml.safe_dump({"governor": section}))


def test_no_budgets_prints_a_hint(runner: CliRunner) -> None:
    result = runner.invoke(make_app(), ["budget"])
    assert result.exit_code == 0, result.output
    assert "no budgets configured" in result.output
    assert "governor:" in result.output
    payload = json.loads(runner.invoke(make_app(), ["budget", "--json"]).output)
    assert payload["budgets"] == []


def test_table_and_json(runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with_budgets(monkeypatch, tmp_path)
    result = runner.invoke(make_app(), ["budget"])
    assert result.exit_code == 0, result.output
    for fragment in ("Budget max", "5h", "session", "week", "sliding", "1,000", "5,000"):
        assert fragment in result.output
    payload = json.loads(runner.invoke(make_app(), ["budget", "--json"]).output)
    (account,) = payload["budgets"]
    assert account["account"] == "max"
    assert [w["window"] for w in account["windows"]] == ["5h", "week"]
    assert account["windows"][0]["remaining"] == 1000
    assert account["windows"][0]["resets_at"] is None


def test_reset_times_are_iso_8601_with_the_offset(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with_budgets(monkeypatch, tmp_path)

    async def use_the_budget() -> float:
        async with Runtime.open(load_settings(tmp_path / "helios.yaml")) as runtime:
            assert runtime.governor is not None
            request = Request.of("hello", params={"max_tokens": 4})
            reservation = await runtime.governor.reserve(request, "anthropic", "claude-sonnet-4-5")
            await runtime.governor.commit(reservation, Usage(input_tokens=5, output_tokens=4))
            (session, _week) = await runtime.governor.status()
            assert session.resets_at is not None
            return session.resets_at

    resets_at = asyncio.run(use_the_budget())
    reset = datetime.fromtimestamp(resets_at).astimezone().isoformat(timespec="seconds")
    result = runner.invoke(make_app(), ["budget"])
    assert result.exit_code == 0, result.output
    assert reset in result.output
    payload = json.loads(runner.invoke(make_app(), ["budget", "--json"]).output)
    assert payload["budgets"][0]["windows"][0]["resets_at_local"] == reset
