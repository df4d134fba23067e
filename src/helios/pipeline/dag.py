"""DAGs of tasks as data: the model, the YAML/JSON file format and its validation.

::

    name: launch
    concurrency: 4
    failure_policy: fail_fast        # or: continue
    tasks:
      - id: market
        persona: zeitgeist
        prompt: "Market trends for {goal}"
      - id: story
        persona: bard
        depends_on: [market]
        priority: 1
        timeout_s: 60
        retries: 2
        prompt: "Brand story for {goal}, grounded in:\n{market}"

A prompt is a template: ``{goal}`` is the DAG's goal and ``{<task id>}`` the output of a
dependency (only dependencies may be named, so the data flow is the dependency graph).
Structural checks (duplicate ids, unknown dependencies, cycles, placeholders, unknown
personas) live in :func:`check_dag` so that a planner's DAG and a file's get the same ones.
"""

from __future__ import annotations

import graphlib
import json
import string
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from helios.errors import InputError

TaskKind = Literal["persona", "dialectic", "dag"]
FailurePolicy = Literal["fail_fast", "continue"]
GOAL = "goal"
_FORMATTER = string.Formatter()


class DagError(InputError):
    """A DAG that cannot run: the message names the file (when there is one) and the field."""


class TaskSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$", max_length=64)
    kind: TaskKind = "persona"
    persona: str | None = None
    prompt: str = "{goal}"
    depends_on: list[str] = Field(default_factory=list)
    priority: int = 0
    """Among tasks ready at the same time, higher starts first."""
    timeout_s: float | None = Field(default=None, gt=0)
    retries: int = Field(default=0, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0)
    """Wait before retry n: ``backoff_s * 2 ** (n - 1)``."""
    model: str | None = None
    dag: Dag | None = None
    docs: list[str] = Field(default_factory=list)
    """Documents for a dialectic task (paths; a file's are relative to the file)."""


class Dag(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "dag"
    tasks: list[TaskSpec] = Field(min_length=1)
    concurrency: int = Field(default=4, ge=1)
    failure_policy: FailurePolicy = "fail_fast"
    final: str | None = None
    """How to merge the outputs into one answer (the planner's instruction), if anything."""

    def task(self, task_id: str) -> TaskSpec:
        for spec in self.tasks:
            if spec.id == task_id:
                return spec
        raise KeyError(task_id)


TaskSpec.model_rebuild()


def placeholders(template: str) -> list[str]:
    """The ``{name}`` fields of a prompt template, in order; bad braces raise ValueError."""
    names: list[str] = []
    for _, name, spec, conversion in _FORMATTER.parse(template):
        if name is None:
            continue
        if spec or conversion or not name:
            raise ValueError(f"placeholder {{{name}}} must be a plain name")
        names.append(name)
    return names


def render_prompt(template: str, values: Mapping[str, str]) -> str:
    """Fill a checked template; each field is looked up by name, never as an attribute."""
    parts: list[str] = []
    for literal, name, _, _ in _FORMATTER.parse(template):
        parts.append(literal)
        if name is not None:
            parts.append(values[name])
    return "".join(parts)


def check_dag(dag: Dag, personas: Collection[str] | None = None, *, where: str = "") -> None:
    """Raise :class:`DagError` for the first structural problem; nested DAGs included.

    ``personas`` (names) enables the unknown-persona check.
    """
    prefix = f"{where}: " if where else ""
    ids: dict[str, int] = {}
    for index, spec in enumerate(dag.tasks):
        if spec.id in ids:
            raise DagError(f"{prefix}tasks[{index}].id: duplicate task id '{spec.id}'")
        ids[spec.id] = index
    for index, spec in enumerate(dag.tasks):
        field = f"{prefix}tasks[{index}] ({spec.id})"
        for dependency in spec.depends_on:
            if dependency not in ids:
                raise DagError(
                    f"{field}.depends_on: unknown task '{dependency}' (tasks: {', '.join(ids)})"
                )
        try:
            names = placeholders(spec.prompt)
        except ValueError as exc:
            raise DagError(f"{field}.prompt: {exc} (write literal braces as {{{{ }}}})") from None
        allowed = {GOAL, *spec.depends_on}
        for name in names:
            if name not in allowed:
                raise DagError(
                    f"{field}.prompt: placeholder {{{name}}} is neither goal nor a dependency "
                    f"(allowed: {', '.join('{' + a + '}' for a in sorted(allowed))})"
                )
        _check_kind(spec, field, personas)
    cycle = find_cycle(dag)
    if cycle:
        raise DagError(f"{prefix}tasks: dependency cycle {' → '.join(cycle)}")


def _check_kind(spec: TaskSpec, field: str, personas: Collection[str] | None) -> None:
    if spec.kind == "persona":
        if not spec.persona:
            raise DagError(f"{field}.persona: a persona task needs a persona")
        if personas is not None and spec.persona not in personas:
            raise DagError(
                f"{field}.persona: unknown persona '{spec.persona}' "
                f"(known: {', '.join(sorted(personas))})"
            )
    if spec.kind == "dag":
        if spec.dag is None:
            raise DagError(f"{field}.dag: a dag task needs a nested dag")
        check_dag(spec.dag, personas, where=f"{field}.dag")
    elif spec.dag is not None:
        raise DagError(f"{field}.dag: only a task of kind dag may nest a dag")


def find_cycle(dag: Dag) -> list[str]:
    """A dependency cycle in run order (``[a, b, c, a]``: b needs a, c needs b, a needs c),
    or an empty list. ``graphlib`` finds it, deterministically: the same DAG always names
    the same cycle."""
    graph = {spec.id: spec.depends_on for spec in dag.tasks}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        # each node of the cycle graphlib reports is a dependency of the next
        return list(error.args[1])
    return []


def parse_dag(data: Any, *, source: str = "dag") -> Dag:
    """A :class:`Dag` from parsed YAML/JSON; schema errors name the source and the field."""
    if not isinstance(data, dict):
        raise DagError(f"{source}: expected a mapping with 'tasks', got {type(data).__name__}")
    try:
        return Dag.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _location(first["loc"], data)
        raise DagError(f"{source}: {where}: {first['msg']}") from None


def _location(loc: tuple[int | str, ...], data: Any) -> str:
    """``tasks[1] (b).depends_on``: indexes with the task's id where it has one."""
    text = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                text += f" ({node['id']})"
        else:
            text += f".{part}" if text else part
            node = node.get(part) if isinstance(node, dict) else None
    return text or "dag"


def load_dag(path: str | Path, *, personas: Collection[str] | None = None) -> Dag:
    """Read and check a DAG file (``.json``, else YAML). Every error names the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DagError(f"{path}: cannot read the DAG file: {exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DagError(f"{path}: not valid {_format(path)}: {_one_line(exc)}") from None
    dag = _resolve_docs(parse_dag(data, source=str(path)), path.parent)
    check_dag(dag, personas, where=str(path))
    return dag


def _resolve_docs(dag: Dag, base: Path) -> Dag:
    tasks = [
        spec.model_copy(
            update={
                "docs": [str(base / doc) for doc in spec.docs],
                "dag": _resolve_docs(spec.dag, base) if spec.dag is not None else None,
            }
        )
        for spec in dag.tasks
    ]
    return dag.model_copy(update={"tasks": tasks})


def _format(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "YAML"


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
