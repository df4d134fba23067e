"""``helios budget``: the hint without budgets, the table and JSON with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from helios.cli import budget as budget_cli
from helios.cli.context import CliContext


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


def test_local_time() -> None:
    assert budget_cli.local_time(None) == "-"
    assert budget_cli.local_time(0).startswith("19")
