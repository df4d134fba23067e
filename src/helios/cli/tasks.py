"""``helios submit`` and ``helios tasks``: durable tasks through a server's HTTP API.

The commands speak to ``helios serve`` (``--server``, ``HELIOS_SERVER_URL``; default the
local one) with an API key (``--key``, ``HELIOS_API_KEY``) when the server has keys. Documents
are read here and travel with the task. ``--follow`` streams the personas live, as
``helios run`` does, from the task's Server-Sent Events, reconnecting with ``Last-Event-ID``
if the connection drops.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from helios.cli.context import cli_context, console_err, console_out
from helios.cli.formatting import print_table, usd
from helios.cli.live import LiveDisplay
from helios.cli.run import flag_assignment
from helios.errors import InputError, TaskError
from helios.pipeline.documents import load_documents

DEFAULT_SERVER = "http://127.0.0.1:8002"
RECONNECTS = 5
ServerOption = Annotated[
    str | None,
    typer.Option("--server", help="The server's URL (HELIOS_SERVER_URL; default the local one)."),
]
KeyOption = Annotated[
    str | None, typer.Option("--key", help="An API key (HELIOS_API_KEY).", show_default=False)
]

app = typer.Typer(help="List, show and cancel durable tasks.", no_args_is_help=True)


class TaskClient:
    """The tasks API of one server, for the CLI (sync: one command, one request at a time)."""

    def __init__(self, server: str | None, key: str | None) -> None:
        import httpx2

        self.base = (server or os.environ.get("HELIOS_SERVER_URL") or DEFAULT_SERVER).rstrip("/")
        token = key or os.environ.get("HELIOS_API_KEY")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx2.Client(base_url=self.base, headers=headers, timeout=30.0)
        self._errors = (httpx2.HTTPError,)

    def call(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, f"/api/v1/tasks{path}", **options)
        except self._errors as exc:
            raise TaskError(
                f"cannot reach {self.base}: {exc} (is `helios serve` running?)"
            ) from None
        if response.status_code >= 400:
            # a 4xx is the user's to mend (exit 2), a 5xx the server's (exit 1)
            error = InputError if response.status_code < 500 else TaskError
            raise error(f"{self.base} answered {response.status_code}: {_reason(response)}")
        body: dict[str, Any] = response.json()
        return body

    def follow(self, task_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The task's events, as (type, data), until its ``end``; a dropped connection is
        resumed from the last event seen."""
        import sseclient

        last_id: str | None = None
        for _ in range(RECONNECTS):
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                with self._http.stream(
                    "GET", f"/api/v1/tasks/{task_id}/events", headers=headers, timeout=None
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise TaskError(
                            f"{self.base} answered {response.status_code}: {_reason(response)}"
                        )
                    for event in sseclient.SSEClient(response.iter_bytes()).events():
                        if event.id:
                            last_id = event.id
                        yield event.event, json.loads(event.data)
                        if event.event == "end":
                            return
            except self._errors:
                time.sleep(1.0)
        raise TaskError(f"lost the event stream of task {task_id} ({RECONNECTS} tries)")

    def close(self) -> None:
        self._http.close()


def _once(
    server: str | None, key: str | None, method: str, path: str, **options: Any
) -> dict[str, Any]:
    """One request to the tasks API, on a client opened for it."""
    client = TaskClient(server, key)
    try:
        return client.call(method, path, **options)
    finally:
        client.close()


def _reason(response: Any) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return str(response.text)[:300]
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', [])[1:])}: {item.get('msg')}"
            for item in detail
        )
    return str(detail)


def submit(
    ctx: typer.Context,
    goal: Annotated[str, typer.Argument(help="What the task should answer.")] = "",
    docs: Annotated[
        list[Path] | None, typer.Option("--docs", "-d", help="Files or folders of evidence.")
    ] = None,
    kind: Annotated[str, typer.Option(help="dialectic, ask or dag.")] = "dialectic",
    dag: Annotated[Path | None, typer.Option(help="kind dag: the DAG file (YAML or JSON).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Every call's model.")] = None,
    flags: Annotated[
        list[str] | None, typer.Option("--flag", help="orchestration.* / personas.* key=value.")
    ] = None,
    priority: Annotated[int, typer.Option(min=1, max=9, help="1 runs first.")] = 5,
    idempotency_key: Annotated[
        str | None, typer.Option(help="The same key returns the first task.")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream the task live.")] = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Queue a task on a server; with --follow, show it live until it ends."""
    settings = cli_context(ctx).settings()
    body: dict[str, Any] = {"kind": kind, "goal": goal, "priority": priority}
    if docs:
        limit = settings.orchestration.evidence.max_document_bytes
        loaded = asyncio.run(load_documents(list(docs), max_document_bytes=limit))
        body["documents"] = [{"name": d.source, "text": d.text} for d in loaded]
    if dag is not None:
        body["dag"] = _read_dag(dag)
    if model:
        body["model"] = model
    if flags:
        body["flags"] = dict(flag_assignment(text) for text in flags)
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    client = TaskClient(server, key)
    try:
        answer = client.call("POST", "", json=body)
        task_id = answer["id"]
        again = " (the task this key already named)" if answer.get("existing") else ""
        console_err.print(f"task {task_id}: {answer['status']}{again}", markup=False)
        if not follow:
            console_out.print(task_id, markup=False)
            return
        _follow(client, task_id)
    finally:
        client.close()


def _follow(client: TaskClient, task_id: str) -> None:
    console = console_out if sys.stdout.isatty() else console_err
    end: dict[str, Any] = {}
    result: dict[str, Any] | None = None
    with LiveDisplay(console, out=console.file) as display:
        stage_pass: dict[str, int] = {}
        for kind, data in client.follow(task_id):
            if kind == "stage":
                stage_pass[data["stage"]] = data["pass"]
                display.stage_started(data["stage"], data["persona"], data["pass"], data["model"])
            elif kind == "chunk":
                display.chunk(data["stage"], data["text"])
            elif kind == "restart":
                display.stage_restarted(data["stage"], data["reason"])
            elif kind in ("note", "error"):
                display.note(data.get("message", ""))
            elif kind == "gate":
                verdict = "pass" if data["passed"] else "fail"
                display.note(
                    f"gate, pass {data['pass']}: {verdict} (judge {data['judge_score']:.2f})"
                )
            elif kind == "result":
                result = data["result"]
            elif kind == "end":
                end = data
    if result is not None:
        verdict = "accepted" if result.get("passed", True) else "not accepted by the gate"
        console_out.print(
            Panel(escape(str(result.get("answer", "")).strip()), title="Answer", subtitle=verdict)
        )
    status = end.get("status", "unknown")
    console_out.print(f"task {task_id}: {status} · cost {usd(end.get('cost_usd'))}", markup=False)
    if status != "succeeded":
        raise typer.Exit(1)


def _read_dag(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the DAG: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a DAG file holds a mapping (name, tasks, ...)")
    return data


@app.command("list")
def list_tasks(
    status: Annotated[
        str | None, typer.Option(help="queued, running, succeeded, failed, cancelled.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """The tasks of your tenant, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    tasks = _once(server, key, "GET", "", params=params)["tasks"]
    if as_json:
        sys.stdout.write(json.dumps(tasks, indent=2) + "\n")
        return
    table = Table(title="Tasks", title_justify="left")
    for column in ("id", "status", "kind", "priority", "created", "goal"):
        table.add_column(column)
    for task in tasks:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(task["created_at"] or 0))
        goal = str(task.get("goal") or "")
        table.add_row(
            task["id"],
            task["status"],
            str(task.get("kind")),
            str(task.get("priority")),
            created,
            escape(goal[:60] + ("…" if len(goal) > 60 else "")),
        )
    print_table(table, console_out)


@app.command("show")
def show(
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """One task: status, stages, result or error, as JSON."""
    task = _once(server, key, "GET", f"/{task_id}")
    sys.stdout.write(json.dumps(task, indent=2) + "\n")


@app.command("cancel")
def cancel(
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Cancel a queued or running task (its running call stops within a second)."""
    answer = _once(server, key, "DELETE", f"/{task_id}")
    console_out.print(f"task {task_id}: cancelled (it was {answer['was']})", markup=False)
