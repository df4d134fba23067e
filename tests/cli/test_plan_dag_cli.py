"""``helios plan`` and ``helios dag run`` through the real entry point, with a scripted model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helios.cli import dag as dag_cli
from helios.cli import plan as plan_cli
from helios.cli.app import app as helios_app
from helios.messages import Request
from helios.providers.function import FunctionProvider, Reply
from helios.sim import SimServer
from tests.cli.conftest import RunCli, serve_in_every_runtime

PLAN = {
    "tasks": [
        {"id": "market", "persona": "zeitgeist", "prompt": "Trends for {goal}", "depends_on": []},
        {
            "id": "story",
            "persona": "bard",
            "prompt": "Story from {market}",
            "depends_on": ["market"],
        },
    ],
    "final": "Story first.",
}
REPLIES: dict[str, Any] = {
    "planner": json.dumps(PLAN),
    "zeitgeist": "Matcha is rising.",
    "bard": "Once upon a leaf.",
    "merge": "The merged answer.",
}


@pytest.fixture(autouse=True)
def _commands_registered() -> Iterator[None]:
    """Register the commands as the integrator will, unless they already are."""
    app = helios_app
    commands, groups = list(app.registered_commands), list(app.registered_groups)
    if not any(c.name == "plan" for c in commands):
        app.command("plan")(plan_cli.plan)
    if not any(g.name == "dag" for g in groups):
        app.add_typer(dag_cli.app, name="dag")
    yield
    app.registered_commands[:], app.registered_groups[:] = commands, groups


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FunctionProvider:
    """Every engine the commands build answers per persona from REPLIES."""

    def reply(request: Request) -> Reply:
        answer = REPLIES.get(request.context.persona or "", "?")
        return answer if not callable(answer) else answer(request)

    fake = FunctionProvider(reply, name="fake", model="model")
    serve_in_every_runtime(monkeypatch, fake)
    (tmp_path / "helios.yaml").write_text(
        "default_model: fake:model\nledger: {enabled: false}\ncache: {enabled: false}\n"
    )
    return fake


def test_plan_prints_the_tree(run_cli: RunCli, provider: FunctionProvider) -> None:
    result = run_cli("plan", "launch a tea brand")
    assert result.exit_code == 0, result.stderr
    assert "market · zeitgeist" in result.stdout and "story · bard" in result.stdout
    assert "merge: Story first." in result.stdout
    assert [r.context.persona for r in provider.calls] == ["planner"]


def test_plan_json(run_cli: RunCli, provider: FunctionProvider) -> None:
    result = run_cli("plan", "launch a tea brand", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert [t["id"] for t in document["plan"]["tasks"]] == ["market", "story"]


def test_plan_execute_prints_outputs_and_answer(
    run_cli: RunCli, provider: FunctionProvider
) -> None:
    result = run_cli("plan", "launch a tea brand", "--execute")
    assert result.exit_code == 0, result.stderr
    for text in ("Matcha is rising.", "Once upon a leaf.", "The merged answer.", "succeeded"):
        assert text in result.stdout
    as_json = run_cli("plan", "launch a tea brand", "--execute", "--json")
    document = json.loads(as_json.stdout)
    assert document["answer"] == "The merged answer." and document["success"] is True


def test_plan_error_is_one_line_exit_2(
    run_cli: RunCli, provider: FunctionProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(REPLIES, "planner", "no plan today")
    result = run_cli("plan", "launch a tea brand")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "valid plan" in lines[0], result.stderr


DAG_FILE = """
name: launch
tasks:
  - {id: market, persona: zeitgeist, prompt: "Trends for {goal}"}
  - {id: story, persona: bard, depends_on: [market], prompt: "Story from {market}"}
"""


def test_dag_run_prints_statuses_and_outputs(
    run_cli: RunCli, provider: FunctionProvider, tmp_path: Path
) -> None:
    (tmp_path / "launch.yaml").write_text(DAG_FILE)
    result = run_cli("dag", "run", "launch.yaml", "--goal", "tea")
    assert result.exit_code == 0, result.stderr
    assert "Matcha is rising." in result.stdout and "Once upon a leaf." in result.stdout
    assert result.stdout.count("succeeded") >= 2
    story = next(r for r in provider.calls if r.context.persona == "bard")
    assert "Story from Matcha is rising." in story.messages[0].content


def test_dag_run_json_and_failure_exit(
    run_cli: RunCli, provider: FunctionProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "launch.yaml").write_text(DAG_FILE)
    monkeypatch.setitem(REPLIES, "zeitgeist", RuntimeError("down"))
    result = run_cli("dag", "run", "launch.yaml", "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    statuses = {t["id"]: t["status"] for t in document["tasks"]}
    assert statuses == {"market": "failed", "story": "skipped"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tasks:\n  - {id: a, persona: bard, depends_on: [a]}\n", "cycle a → a"),
        ("tasks:\n  - {id: a, persona: ghost}\n", "unknown persona 'ghost'"),
        ("tasks: [\n", "not valid YAML"),
    ],
)
def test_bad_dag_file_is_one_line_exit_2(
    run_cli: RunCli, provider: FunctionProvider, tmp_path: Path, text: str, problem: str
) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    result = run_cli("dag", "run", "bad.yaml")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "bad.yaml" in lines[0] and problem in lines[0]
    assert provider.calls == []


def test_dag_runs_are_recorded_in_the_ledger(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    (tmp_path / "helios.yaml").write_text(
        "default_model: openai:gpt-5.4-mini\n"
        f"providers:\n  openai: {{base_url: '{sim.base_url}/v1', api_key: test, max_retries: 0}}\n"
    )
    (tmp_path / "two.yaml").write_text(
        "name: two\ntasks:\n  - {id: a, persona: bard, prompt: 'x {goal}'}\n"
        "  - {id: b, persona: zeitgeist, prompt: 'y {a}', depends_on: [a]}\n"
    )
    result = run_cli("dag", "run", "two.yaml", "--goal", "tea", "--json")
    assert result.exit_code == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    exported = run_cli("ledger", "export")
    events = [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]
    mine = [event for event in events if event["task_id"] == run_id]
    types = [event["type"] for event in mine]
    assert types[0] == "task_started" and types[-1] == "task_finished"
    # the engine recorded one persona_llm_run per persona node, staged by the node's id
    runs = [event for event in mine if event["type"] == "persona_llm_run"]
    assert sorted((run["stage"], run["persona"]) for run in runs) == [
        ("a", "bard"),
        ("b", "zeitgeist"),
    ]
