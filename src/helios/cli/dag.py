"""``helios dag run FILE``: run a DAG file and print each task's status and output."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from helios.cli.context import cli_context, console_out
from helios.cli.formatting import print_table
from helios.config.settings import Settings
from helios.pipeline.admission import admission_for
from helios.pipeline.dag import Dag, load_dag
from helios.pipeline.dag_runner import EngineTaskRunner
from helios.pipeline.personas import load_personas
from helios.pipeline.scheduler import DagResult, DagScheduler, TaskResult
from helios.runtime import Runtime

EXIT_FAILED = 1

app = typer.Typer(help="Run DAGs of persona, dialectic and nested-DAG tasks.", no_args_is_help=True)

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "skipped": "yellow",
    "cancelled": "yellow",
}


@app.command("run")
def run(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The DAG file (YAML, or .json).")],
    goal: Annotated[str, typer.Option("--goal", "-g", help="Fills {goal} in prompts.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Run the tasks of FILE in dependency order and print their status and outputs."""
    settings = cli_context(ctx).settings()
    dag = load_dag(file, personas=list(load_personas(settings)))
    result = asyncio.run(run_dag(dag, settings, goal=goal))
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        print_dag_result(result, dag, console_out)
    if not result.success:
        raise typer.Exit(EXIT_FAILED)


async def run_dag(dag: Dag, settings: Settings, *, goal: str = "") -> DagResult:
    """Run ``dag`` on a runtime built from ``settings`` and closed afterwards."""
    async with Runtime.open(settings) as runtime:
        runner = EngineTaskRunner.for_runtime(runtime)
        try:
            admission = admission_for(runtime.engine.governor)
            scheduler = DagScheduler(runner, sink=runtime.sink, admission=admission)
            return await scheduler.run(dag, goal=goal)
        finally:
            await runner.aclose()


def print_dag_result(result: DagResult, dag: Dag, console: Console) -> None:
    print_table(status_table(result, dag), console)
    for task in result.tasks.values():
        if task.status == "succeeded" and task.output.strip():
            console.print(Panel(escape(task.output.strip()), title=escape(task.id)))
    verdict = "[green]succeeded[/]" if result.success else "[red]failed[/]"
    console.print(
        f"dag {escape(result.name)} {verdict} in {result.duration_s:.2f} s · run {result.run_id}",
        style="bold",
    )


def status_table(result: DagResult, dag: Dag) -> Table:
    table = Table(title=f"DAG {escape(dag.name)}", title_justify="left")
    for column in ("task", "kind", "persona", "status", "attempts", "duration", "note"):
        table.add_column(column, justify="right" if column in ("attempts", "duration") else "left")
    for spec in dag.tasks:
        task: TaskResult = result.tasks[spec.id]
        style = STATUS_STYLE.get(task.status, "")
        table.add_row(
            escape(spec.id),
            spec.kind,
            escape(spec.persona or "—"),
            f"[{style}]{task.status}[/]" if style else task.status,
            str(task.attempts),
            f"{task.duration_s:.2f} s",
            escape(task.error or ""),
        )
    return table
