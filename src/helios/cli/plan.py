"""``helios plan GOAL``: the Master Planner's DAG for a goal; ``--execute`` runs and merges it."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.tree import Tree

from helios.cli.context import cli_context, console_err, console_out
from helios.cli.dag import EXIT_FAILED, print_dag_result
from helios.config.settings import Settings
from helios.messages import CallContext
from helios.pipeline.admission import admission_for
from helios.pipeline.dag import Dag
from helios.pipeline.planner import PlanResult
from helios.pipeline.planner import execute as execute_plan
from helios.pipeline.planner import plan as make_plan
from helios.pipeline.runner import build_gatherer
from helios.runtime import Runtime


def plan(
    ctx: typer.Context,
    goal: Annotated[str, typer.Argument(help="What the plan should achieve.")],
    execute: Annotated[
        bool, typer.Option("--execute", "-x", help="Run the plan and merge the results.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Split GOAL into a DAG of persona tasks (and, with --execute, run it)."""
    settings = cli_context(ctx).settings()
    document: dict[str, Any]
    if not execute:
        dag = asyncio.run(_plan_only(goal, settings))
        if as_json:
            document = {"plan": dag.model_dump(mode="json", exclude_defaults=True)}
            _write_json(document)
        else:
            print_plan(dag, console_out)
        return
    if not as_json:
        console_err.print("planning and running…", style="dim")
    result = asyncio.run(_plan_and_execute(goal, settings))
    if as_json:
        _write_json(result.to_dict())
    else:
        print_plan(result.dag, console_out)
        print_dag_result(result.dag_result, result.dag, console_out)
        answer = result.answer.strip() or "(no answer: no task succeeded)"
        console_out.print(Panel(escape(answer), title="Answer"))
    if not result.success:
        raise typer.Exit(EXIT_FAILED)


def _write_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


async def _plan_only(goal: str, settings: Settings) -> Dag:
    async with Runtime.open(settings) as runtime:
        context = CallContext(task_id=f"plan-{uuid.uuid4().hex}")
        return await make_plan(goal, runtime.engine, runtime.settings, context=context)


async def _plan_and_execute(goal: str, settings: Settings) -> PlanResult:
    async with Runtime.open(settings) as runtime:
        return await execute_plan(
            goal,
            runtime.engine,
            runtime.settings,
            sink=runtime.sink,
            admission=admission_for(runtime.engine.governor),
            gatherer_factory=lambda: build_gatherer(runtime),
        )


def print_plan(dag: Dag, console: Console) -> None:
    """The plan as a tree: each task under the tasks it depends on (roots at the top)."""
    tree = Tree(f"[bold]plan[/] · {len(dag.tasks)} tasks")
    children: dict[str, list[str]] = {spec.id: [] for spec in dag.tasks}
    for spec in dag.tasks:
        if spec.depends_on:
            children[spec.depends_on[0]].append(spec.id)

    def add(node: Tree, task: str) -> None:
        spec = dag.task(task)
        more = spec.depends_on[1:]
        also = f" [dim](also needs {', '.join(more)})[/]" if more else ""
        prompt = " ".join(spec.prompt.split())
        prompt = prompt if len(prompt) <= 90 else prompt[:89] + "…"
        branch = node.add(
            f"[bold]{escape(task)}[/] · {escape(spec.persona or spec.kind)}{also}\n"
            f"[dim]{escape(prompt)}[/]"
        )
        for child in children[task]:
            add(branch, child)

    for spec in dag.tasks:
        if not spec.depends_on:
            add(tree, spec.id)
    console.print(tree)
    if dag.final:
        console.print(f"merge: {escape(dag.final)}", style="dim")
