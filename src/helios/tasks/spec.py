"""What a task is: the body of ``POST /api/v1/tasks``, checked before it is accepted.

Documents travel with the task (``documents: [{name, text}]``): a worker on another machine
cannot read the submitter's disk, and a server must not read its own disk for a caller.
Only an admin may name ``paths`` instead, and only inside ``tasks.document_folders``.

``flags`` change the pipeline for this task alone (``orchestration.*`` and ``personas.*``:
the engine, its cache and router are shared by every task of the process). Every check
names the field it failed on; the HTTP API answers 422 with that name.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from helios.config.settings import Settings
from helios.config.tasks import TasksSettings
from helios.errors import ConfigError, InputError
from helios.pipeline.dag import check_dag, parse_dag
from helios.pipeline.personas import load_personas

TaskKind = Literal["dialectic", "dag", "ask"]
FlagValue = bool | int | float | str
TASK_FLAG_ROOTS = ("orchestration", "personas")
DEFAULT_PRIORITY = 5


class TaskInputError(InputError):
    """A submission Helios will not accept; ``field`` names where (``documents[2].text``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


class InlineDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=255, description="shown in citations")
    text: str = Field(min_length=1, description="the document's UTF-8 text")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if any(ch in name for ch in "\x00\r\n"):
            raise ValueError("a document name is one line of text")
        return name


class TaskRequest(BaseModel):
    """``POST /api/v1/tasks``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "goal": "Should a five-person startup adopt microservices?",
                    "documents": [{"name": "team.md", "text": "Five engineers, one product."}],
                    "priority": 3,
                },
                {"kind": "ask", "goal": "What is the capital of Japan?"},
            ]
        },
    )

    kind: TaskKind = Field(default="dialectic", description="dialectic, dag or ask")
    goal: str = Field(default="", max_length=20_000, description="the question (a DAG's {goal})")
    documents: list[InlineDocument] = Field(default_factory=list)
    paths: list[str] = Field(
        default_factory=list, description="admin only: files inside tasks.document_folders"
    )
    dag: dict[str, Any] | None = Field(default=None, description="kind dag: the DAG document")
    model: str | None = Field(default=None, max_length=200, description="every call's model")
    flags: dict[str, FlagValue] = Field(
        default_factory=dict,
        description="dotted settings for this task, e.g. orchestration.max_passes",
    )
    priority: int = Field(default=DEFAULT_PRIORITY, ge=1, le=9, description="1 runs first, 9 last")
    queue: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class TaskSpec(BaseModel):
    """A checked task, as its workflow receives it (plain JSON: DBOS stores it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TaskKind
    goal: str
    documents: list[InlineDocument] = Field(default_factory=list)
    dag: dict[str, Any] | None = None
    model: str | None = None
    flags: dict[str, FlagValue] = Field(default_factory=dict)
    priority: int = DEFAULT_PRIORITY
    tenant: str = "default"
    key_id: str | None = None
    queue: str = "tasks"
    submitted_at: float | None = None
    """When it was accepted (epoch seconds): its ``task_started`` tells the queue wait."""

    def digest(self) -> str:
        """What an idempotency key promises stays the same (tenant, key and time aside)."""
        body = self.model_dump(mode="json", exclude={"tenant", "key_id", "submitted_at"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_request(
    request: TaskRequest,
    settings: Settings,
    *,
    tenant: str,
    key_id: str | None,
    admin: bool,
) -> TaskSpec:
    """The task ``request`` asks for, or :class:`TaskInputError` naming the field."""
    limits = settings.tasks
    goal = request.goal.strip()
    if request.kind != "dag" and not goal:
        raise TaskInputError("goal", "the goal is empty")
    if request.kind == "dag" and request.dag is None:
        raise TaskInputError("dag", "a task of kind dag needs its DAG document")
    if request.kind != "dag" and request.dag is not None:
        raise TaskInputError(
            "dag", f"only a task of kind dag takes a DAG (this one is {request.kind})"
        )
    if request.kind == "ask" and (request.documents or request.paths):
        raise TaskInputError("documents", "an ask task takes no documents (use kind dialectic)")
    documents = [*request.documents, *_documents_at(request.paths, limits, admin=admin)]
    _check_sizes(documents, limits)
    _check_flags(request.flags, settings)
    if request.dag is not None:
        _check_dag(request.dag, settings)
    return TaskSpec(
        kind=request.kind,
        goal=goal,
        documents=documents,
        dag=request.dag,
        model=request.model,
        flags=request.flags,
        priority=request.priority,
        tenant=tenant,
        key_id=key_id,
        queue=request.queue or limits.queue,
        submitted_at=time.time(),
    )


def _documents_at(paths: list[str], limits: TasksSettings, *, admin: bool) -> list[InlineDocument]:
    if not paths:
        return []
    if not admin:
        raise TaskInputError("paths", "only an admin key may name files on the server")
    folders = [folder.resolve() for folder in limits.document_folders]
    if not folders:
        raise TaskInputError(
            "paths", "the server allows no document folder (tasks.document_folders)"
        )
    documents = []
    for index, raw in enumerate(paths):
        path = Path(raw).resolve()
        if not any(path.is_relative_to(folder) for folder in folders):
            raise TaskInputError(f"paths[{index}]", f"'{raw}' is outside tasks.document_folders")
        if not path.is_file():
            raise TaskInputError(f"paths[{index}]", f"'{raw}' is not a file")
        if path.stat().st_size > limits.max_task_bytes:
            raise TaskInputError(
                f"paths[{index}]", f"'{raw}' exceeds {limits.max_task_bytes} bytes"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise TaskInputError(f"paths[{index}]", f"'{raw}' is not UTF-8 text") from None
        documents.append(InlineDocument(name=path.name, text=text))
    return documents


def _check_sizes(documents: list[InlineDocument], limits: TasksSettings) -> None:
    if len(documents) > limits.max_documents:
        raise TaskInputError(
            "documents", f"{len(documents)} documents; at most {limits.max_documents} per task"
        )
    total = 0
    for index, document in enumerate(documents):
        if "\x00" in document.text:
            raise TaskInputError(f"documents[{index}].text", "binary content (a NUL byte)")
        total += len(document.text.encode("utf-8", errors="surrogatepass"))
        if total > limits.max_task_bytes:
            raise TaskInputError(
                f"documents[{index}]",
                f"the documents exceed {limits.max_task_bytes} bytes together",
            )


def _check_flags(flags: dict[str, FlagValue], settings: Settings) -> None:
    for key in flags:
        root = key.split(".", 1)[0]
        if root not in TASK_FLAG_ROOTS or "." not in key:
            raise TaskInputError(
                f"flags.{key}",
                "only orchestration.* and personas.* settings can change for one task",
            )
    try:
        with_flags(settings, flags)
    except ConfigError as exc:
        raise TaskInputError("flags", str(exc)) from None


def with_flags(settings: Settings, flags: dict[str, FlagValue]) -> Settings:
    """``settings`` with a task's dotted ``flags`` applied (ConfigError names a bad one)."""
    if not flags:
        return settings
    data = settings.model_dump(mode="python", include=set(TASK_FLAG_ROOTS))
    for key, value in flags.items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"flags.{key}: '{part}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    update = {}
    for root in TASK_FLAG_ROOTS:
        annotation = Settings.model_fields[root].annotation
        assert annotation is not None
        try:
            update[root] = TypeAdapter(annotation).validate_python(data[root])
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in (root, *error["loc"]))
            raise ConfigError(f"{where}: {error['msg']}") from None
    return settings.model_copy(update=update)


def _check_dag(dag: dict[str, Any], settings: Settings) -> None:
    try:
        parsed = parse_dag(dag, source="dag")
        check_dag(parsed, list(load_personas(settings)), where="dag")
    except InputError as exc:
        raise TaskInputError("dag", str(exc)) from None
    for task in parsed.tasks:
        if task.kind == "dag":
            raise TaskInputError(f"dag.tasks.{task.id}", "a task's DAG cannot nest a DAG")
        if task.docs:
            raise TaskInputError(
                f"dag.tasks.{task.id}.docs", "a DAG task reads no server files; use kind dialectic"
            )
