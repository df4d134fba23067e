"""``helios run``: the dialectic pipeline on a goal, with its evidence and a summary."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from helios.catalog import Tier
from helios.cli.context import cli_context, console_err, console_out
from helios.cli.formatting import UNKNOWN, print_table, usd, usd_total
from helios.cli.live import LiveDisplay
from helios.errors import ConfigError, InputError
from helios.ledger.sink import MemorySink
from helios.pipeline.results import DialecticResult
from helios.pipeline.runner import run_dialectic


def run(
    ctx: typer.Context,
    goal: Annotated[str, typer.Argument(help="What the pipeline should answer.")],
    more_docs: Annotated[
        list[Path] | None, typer.Argument(hidden=True, help="Further --docs paths.")
    ] = None,
    docs: Annotated[
        list[Path] | None,
        typer.Option("--docs", "-d", help="Files or folders of text/Markdown evidence."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="One model spec for every persona.")
    ] = None,
    tier: Annotated[
        Tier | None, typer.Option("--tier", help="Every persona on this tier's model.")
    ] = None,
    flags: Annotated[
        list[str] | None,
        typer.Option(
            "--flag", help="Override a setting, e.g. orchestration.async_thesis.enabled=false."
        ),
    ] = None,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="No live text; print the results at the end.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Run thesis -> antithesis -> synthesis -> quality gate on GOAL."""
    if more_docs and not docs:
        raise InputError(f"unexpected argument '{more_docs[0]}': put documents after --docs")
    paths = [*(docs or []), *(more_docs or [])]
    context = cli_context(ctx)
    for override in flags or []:
        _merge(context.overrides, _parse_flag(override))
    settings = context.settings()
    if tier is not None and model is None:
        model = settings.tiers[tier]
    sink = MemorySink()
    if as_json or no_stream:
        result = asyncio.run(
            run_dialectic(goal, docs=paths, settings=settings, sink=sink, model=model)
        )
    else:
        # Progress goes where the final result does not: a terminal shows both, a pipe
        # (`helios run ... > answer.txt`) receives only the result.
        console = console_out if sys.stdout.isatty() else console_err
        with LiveDisplay(console, out=console.file) as display:
            result = asyncio.run(
                run_dialectic(
                    goal, docs=paths, settings=settings, sink=sink, model=model, observer=display
                )
            )
    if as_json:
        document = result.to_dict()
        document["events"] = [event.model_dump(mode="json") for event in sink.events]
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    print_result(result, console_out)


def flag_assignment(text: str) -> tuple[str, Any]:
    """``--flag key=value``: the dotted key, and the value as YAML reads it."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--flag {text}: expected key=value, e.g. orchestration.max_passes=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _parse_flag(text: str) -> dict[str, Any]:
    key, value = flag_assignment(text)
    node: dict[str, Any] = {}
    root = node
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return root


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def print_result(result: DialecticResult, console: Console) -> None:
    verdict = (
        f"accepted on pass {result.accepted_pass}"
        if result.accepted_pass is not None
        else f"no pass passed the quality gate ({len(result.passes)} tried); the last is shown"
    )
    console.print(
        Panel(escape(result.answer.strip() or "(empty answer)"), title="Answer", subtitle=verdict)
    )
    if result.evidence.passages:
        evidence = Table(title="Evidence used", title_justify="left")
        for column in ("id", "source", "score"):
            evidence.add_column(column, justify="right" if column == "score" else "left")
        for passage in result.evidence.passages:
            evidence.add_row(passage.id, escape(passage.citation), f"{passage.score:.2f}")
        print_table(evidence, console)
    else:
        console.print("Evidence: none (no documents were given)", style="dim")
    print_table(_stage_table(result), console)
    for outcome in result.passes:
        gate = outcome.gate
        status = "[green]pass[/]" if gate.passed else "[red]fail[/]"
        problems = "; ".join([*gate.evidence.problems, *gate.verdict.reasons]) or "—"
        console.print(
            f"gate, pass {outcome.number}: {status} · judge score {gate.verdict.score:.2f}"
            f"{'' if gate.verdict.valid else ' (no valid verdict)'} · {escape(problems)}"
        )
    if result.async_fallback:
        console.print(f"async thesis fell back: {escape(result.async_fallback)}", style="yellow")
    calls, unpriced = len(result.stages), result.unpriced_stages
    cost = usd_total(result.cost_usd, unpriced=unpriced, calls=calls)
    saved = usd(result.saved_usd) if result.cost_known else UNKNOWN
    console.print(
        f"total {result.duration_s:.2f} s · {result.cache_hits}/{calls} persona "
        f"calls from cache · tokens in {result.input_tokens} / out {result.output_tokens} · "
        f"cost {cost} (saved {saved}) · task {result.task_id}",
        style="bold",
    )


def _stage_table(result: DialecticResult) -> Table:
    table = Table(title="Stages", title_justify="left")
    for column in ("stage", "model", "cache", "TTFT", "duration", "in", "out", "cost"):
        table.add_column(
            column, justify="left" if column in ("stage", "model", "cache") else "right"
        )
    for s in result.stages:
        label = s.stage if s.pass_number == 1 else f"{s.stage} ({s.pass_number})"
        table.add_row(
            label,
            escape(f"{s.provider}:{s.model}"),
            f"hit {s.cache_layer}" if s.cache_layer else "miss",
            f"{s.ttft_s * 1000:.0f} ms",
            f"{s.duration_s:.2f} s",
            str(s.input_tokens),
            str(s.output_tokens),
            usd(s.cost_usd, digits=5),
        )
    return table
