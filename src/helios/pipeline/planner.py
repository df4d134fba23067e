"""The Master Planner: a goal becomes a DAG of persona tasks, run and merged into one answer.

``plan()`` asks the ``planner`` persona for ``{"tasks": [{"id", "persona", "prompt",
"depends_on"}], "final": "..."}`` (a response schema lets llama.cpp, OpenAI and Gemini
enforce it). The first JSON object of the reply is validated like a DAG file (schema,
dependencies, cycles, placeholders, known personas); a reply that fails gets one repair
request naming the problem, as the quality gate's judge does, then :class:`PlanError`.
``execute()`` runs the plan with the :class:`DagScheduler` and merges the outputs with one
final call that follows the plan's ``final`` instruction.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from helios.config.settings import Settings
from helios.engine import Engine
from helios.errors import InputError
from helios.ledger.sink import EventSink
from helios.messages import CallContext, Message, Request
from helios.pipeline.dag import Dag, DagError, TaskSpec, check_dag, placeholders
from helios.pipeline.dag_runner import EngineTaskRunner, GathererFactory
from helios.pipeline.dialectic import Gatherer
from helios.pipeline.personas import Persona, load_personas
from helios.pipeline.scheduler import Admission, DagResult, DagScheduler

PLANNER = "planner"
NOT_ASSIGNABLE = frozenset({PLANNER, "judge"})  # personas a plan may not hand tasks to

MERGE_SYSTEM = (
    "You are the Synthesis of a team of specialists. You merge their results into one "
    "coherent, practical answer to the goal, keeping what is specific and resolving "
    "disagreements. You do not mention the team or the tasks."
)


class PlanError(InputError):
    """The planner did not produce a usable plan, even after a repair request."""

    def __init__(self, message: str, *, raw: str) -> None:
        self.raw = raw
        super().__init__(message)


class _PlannedTask(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    persona: str
    prompt: str
    depends_on: list[str] = Field(default_factory=list)


class _Plan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tasks: list[_PlannedTask] = Field(min_length=1)
    final: str = ""


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (models wrap JSON in prose or code fences)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def parse_plan(text: str, personas: Mapping[str, Persona], *, name: str = "plan") -> Dag:
    """The plan in ``text`` as a checked :class:`Dag`; :class:`DagError` says what is wrong.

    A dependency whose output the prompt does not mention is appended to the prompt, so
    data always flows along the dependency edges.
    """
    data = first_json_object(text)
    if data is None:
        raise DagError("the reply holds no JSON object")
    try:
        plan = _Plan.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise DagError(f"{where}: {first['msg']}") from None
    tasks: list[TaskSpec] = []
    for index, planned in enumerate(plan.tasks):
        try:
            tasks.append(
                TaskSpec(
                    id=planned.id,
                    persona=planned.persona,
                    prompt=_with_inputs(planned.prompt, planned.depends_on),
                    depends_on=planned.depends_on,
                )
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise DagError(f"tasks[{index}].{where}: {first['msg']}") from None
    dag = Dag(name=name, tasks=tasks, final=plan.final or None)
    check_dag(dag, [p for p in personas if p not in NOT_ASSIGNABLE])
    return dag


def _with_inputs(prompt: str, depends_on: list[str]) -> str:
    try:
        mentioned = set(placeholders(prompt))
    except ValueError:
        return prompt  # check_dag reports it
    missing = [dep for dep in dict.fromkeys(depends_on) if dep not in mentioned]
    blocks = "".join(f"\n\nOutput of {dep}:\n{{{dep}}}" for dep in missing)
    return prompt + blocks


def repair_request(error: str) -> str:
    return (
        f"That reply was not a valid plan: {error}. Reply with exactly one JSON object: "
        '{"tasks": [{"id": "...", "persona": "...", "prompt": "...", "depends_on": []}], '
        '"final": "..."}, using only the listed personas and no dependency cycles.'
    )


def _persona_list(personas: Mapping[str, Persona]) -> str:
    lines = [
        f"- {name}: {persona.description or 'no description'}"
        for name, persona in sorted(personas.items())
        if name not in NOT_ASSIGNABLE
    ]
    return "Personas you can assign:\n" + "\n".join(lines)


async def plan(
    goal: str,
    engine: Engine,
    settings: Settings,
    *,
    personas: Mapping[str, Persona] | None = None,
    model: str | None = None,
    context: CallContext | None = None,
) -> Dag:
    """Ask the planner persona for a DAG for ``goal``; one repair request, then PlanError.
    ``context`` names the task the planner's calls belong to."""
    goal = goal.strip()
    if not goal:
        raise InputError("the goal is empty")
    personas = personas if personas is not None else load_personas(settings)
    planner = personas.get(PLANNER)
    if planner is None:
        raise InputError("the planner needs the 'planner' persona")
    base = planner.request(
        {"goal": goal},
        model=planner.model_spec(settings, model),
        context=(context or CallContext()).model_copy(update={"stage": "plan"}),
    )
    prompt = f"{base.messages[0].content}\n\n{_persona_list(personas)}"
    first_turn = Message(role="user", content=prompt)
    first = (await engine.complete(_with_messages(base, (first_turn,)))).text
    try:
        return parse_plan(first, personas)
    except DagError as exc:
        error = str(exc)
    follow_up = (
        first_turn,
        Message(role="assistant", content=first),
        Message(role="user", content=repair_request(error)),
    )
    second = (await engine.complete(_with_messages(base, follow_up))).text
    try:
        return parse_plan(second, personas)
    except DagError as exc:
        raise PlanError(
            f"the planner did not return a valid plan after one repair request: {exc}",
            raw=second,
        ) from None


def _with_messages(request: Request, messages: tuple[Message, ...]) -> Request:
    return request.model_copy(update={"messages": messages, "task_type": "plan"})


@dataclass(slots=True)
class PlanResult:
    dag: Dag
    dag_result: DagResult
    answer: str

    @property
    def success(self) -> bool:
        return self.dag_result.success and bool(self.answer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.dag.model_dump(mode="json", exclude_defaults=True),
            "result": self.dag_result.to_dict(),
            "answer": self.answer,
            "success": self.success,
        }


async def execute(
    goal: str,
    engine: Engine,
    settings: Settings,
    *,
    dag: Dag | None = None,
    model: str | None = None,
    sink: EventSink | None = None,
    admission: Admission | None = None,
    gatherer_factory: GathererFactory | None = None,
    context: CallContext | None = None,
) -> PlanResult:
    """Plan ``goal`` (or take ``dag``), run it, and merge the outputs into one answer.

    Failed tasks are left out of the merge; with no successful task the answer is empty.
    The planning calls, the DAG run and the merge share one task id (the DAG run's).
    """
    personas = load_personas(settings)
    context = (context or CallContext()).model_copy(
        update={"task_id": (context.task_id if context else None) or uuid.uuid4().hex}
    )
    if dag is None:
        dag = await plan(goal, engine, settings, personas=personas, model=model, context=context)
    runner = EngineTaskRunner(
        engine,
        settings,
        personas,
        gatherer_factory or _no_evidence,
        sink=sink,
        model_override=model,
    )
    scheduler = DagScheduler(runner, sink=sink, admission=admission)
    try:
        result = await scheduler.run(dag, goal=goal, context=context)
    finally:
        await runner.aclose()
    answer = await merge(
        goal, dag, result, engine, settings, personas[PLANNER], model=model, context=context
    )
    return PlanResult(dag, result, answer)


def _no_evidence() -> Gatherer:
    raise InputError(
        "this plan has a dialectic task, which needs evidence retrieval: run it "
        "with a gatherer (helios plan and helios dag run provide one)"
    )


async def merge(
    goal: str,
    dag: Dag,
    result: DagResult,
    engine: Engine,
    settings: Settings,
    planner: Persona,
    *,
    model: str | None = None,
    context: CallContext | None = None,
) -> str:
    """One call that merges the successful task outputs as the plan's ``final`` says."""
    outputs = result.outputs
    if not outputs:
        return ""
    sections = "\n\n".join(
        f"## {task} ({_persona(dag, task)})\n{text}" for task, text in outputs.items()
    )
    instruction = dag.final or "Merge the results into one answer to the goal."
    prompt = f"Goal: {goal}\n\nResults:\n\n{sections}\n\nInstruction: {instruction}"
    request = Request.of(
        prompt,
        system=MERGE_SYSTEM,
        model=planner.model_spec(settings, model),
        task_type="plan",
        context=(context or CallContext()).model_copy(
            update={"persona": "merge", "stage": "merge"}
        ),
    )
    return (await engine.complete(request)).text


def _persona(dag: Dag, task: str) -> str:
    spec = dag.task(task)
    return spec.persona or spec.kind
