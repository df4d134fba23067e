"""The Master Planner: JSON plan -> DAG, one repair request, execution and the merge."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from helios.config.settings import Settings
from helios.messages import Request
from helios.pipeline.personas import load_personas
from helios.pipeline.planner import PlanError, execute, parse_plan, plan
from helios.providers.function import Reply
from tests.pipeline.helpers import make_world, pipeline_settings

PLAN = {
    "tasks": [
        {"id": "market", "persona": "zeitgeist", "prompt": "Trends for {goal}", "depends_on": []},
        {
            "id": "story",
            "persona": "bard",
            "prompt": "A story for {goal}",
            "depends_on": ["market"],
        },
    ],
    "final": "Lead with the story, back it with the trends.",
}


class Script:
    """Replies per persona: each value is a list consumed call by call (or a fixed reply)."""

    def __init__(self, **replies: Any) -> None:
        self.replies = replies
        self.requests: list[Request] = []

    def reply(self, request: Request) -> Reply:
        self.requests.append(request)
        answer = self.replies[request.context.persona or "?"]
        if isinstance(answer, list):
            return str(answer.pop(0))
        return str(answer(request)) if callable(answer) else str(answer)

    def of(self, persona: str) -> list[Request]:
        return [r for r in self.requests if r.context.persona == persona]


def world_for(script: Script) -> Any:
    world = make_world(cache=False)
    world.provider._fn = script.reply
    return world


def test_shipped_specialists_load_and_render() -> None:
    personas = load_personas(Settings())
    for name in ("planner", "zeitgeist", "bard"):
        system, prompt = personas[name].render({"goal": "launch a tea brand"})
        assert system and "launch a tea brand" in prompt
    assert personas["planner"].response_schema is not None
    assert personas["planner"].response_schema["required"] == ["tasks", "final"]


def test_parse_plan_takes_the_first_json_object_and_wires_inputs() -> None:
    personas = load_personas(Settings())
    plan_without_placeholder = json.loads(json.dumps(PLAN))
    text = f"Here is the plan:\n```json\n{json.dumps(plan_without_placeholder)}\n```"
    dag = parse_plan(text, personas)
    assert [t.id for t in dag.tasks] == ["market", "story"]
    assert dag.final == PLAN["final"]
    # the story depends on the market but did not mention it: its output is appended
    assert dag.task("story").prompt.endswith("Output of market:\n{market}")


async def test_valid_plan_in_one_call() -> None:
    script = Script(planner=[json.dumps(PLAN)])
    world = world_for(script)
    dag = await plan("launch a tea brand", world.engine, pipeline_settings())
    assert [t.persona for t in dag.tasks] == ["zeitgeist", "bard"]
    request = script.of("planner")[0]
    assert request.response_schema is not None and request.task_type == "plan"
    content = request.messages[0].content
    assert "launch a tea brand" in content and "- zeitgeist:" in content
    assert "- planner:" not in content


async def test_invalid_json_gets_one_repair_then_succeeds() -> None:
    script = Script(planner=["I think we should research first.", json.dumps(PLAN)])
    world = world_for(script)
    dag = await plan("launch a tea brand", world.engine, pipeline_settings())
    assert len(dag.tasks) == 2
    repair = script.of("planner")[1]
    assert [m.role for m in repair.messages] == ["user", "assistant", "user"]
    assert "no JSON object" in repair.messages[-1].content


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (
            {"tasks": [{"id": "a", "persona": "wizard", "prompt": "x", "depends_on": []}]},
            "unknown persona 'wizard'",
        ),
        (
            {
                "tasks": [
                    {"id": "a", "persona": "bard", "prompt": "x", "depends_on": ["b"]},
                    {"id": "b", "persona": "bard", "prompt": "x", "depends_on": ["a"]},
                ]
            },
            "cycle a → b → a",
        ),
    ],
)
async def test_invalid_twice_raises_plan_error_with_raw(bad: dict[str, Any], problem: str) -> None:
    script = Script(planner=[json.dumps(bad), json.dumps(bad) + " trailing"])
    world = world_for(script)
    with pytest.raises(PlanError) as info:
        await plan("goal", world.engine, pipeline_settings())
    assert problem in str(info.value)
    assert info.value.raw == json.dumps(bad) + " trailing"
    assert problem in script.of("planner")[1].messages[-1].content  # the repair said why


async def test_execute_runs_the_plan_and_merges() -> None:
    replies: dict[str, Callable[[Request], str] | list[str] | str] = {
        "planner": [json.dumps(PLAN)],
        "zeitgeist": "Matcha is rising.",
        "bard": lambda r: f"Story built on: {'Matcha is rising.' in r.messages[0].content}",
        "merge": "MERGED",
    }
    script = Script(**replies)
    world = world_for(script)
    result = await execute("launch a tea brand", world.engine, pipeline_settings(), sink=world.sink)
    assert result.success and result.answer == "MERGED"
    assert result.dag_result.tasks["story"].output == "Story built on: True"
    merge = script.of("merge")[0].messages[0].content
    assert "Matcha is rising." in merge and "Story built on" in merge
    assert PLAN["final"] in merge
    data = result.to_dict()
    assert data["answer"] == "MERGED" and data["result"]["success"] is True


async def test_execute_with_no_successful_task_has_no_answer() -> None:
    plan_one = {
        "tasks": [{"id": "a", "persona": "bard", "prompt": "x", "depends_on": []}],
        "final": "",
    }
    script = Script(
        planner=[json.dumps(plan_one)], bard=lambda r: (_ for _ in ()).throw(RuntimeError("down"))
    )
    world = world_for(script)
    result = await execute("goal", world.engine, pipeline_settings())
    assert not result.success and result.answer == ""
    assert script.of("merge") == []
