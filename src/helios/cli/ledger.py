"""``helios ledger``: summaries, A/B comparisons and the last task's timeline, read from the
event ledger; JSONL import and export.

- An empty ledger (or no task in the selection) is a state, not an error: the commands say
  so on one line and exit 0; ``--json`` prints ``{"tasks": 0, "message": ...}``.
- ``import`` is all or nothing: a file with a bad line (not JSON, an unknown type, an
  implausible value such as a timestamp in milliseconds) imports nothing and exits 2,
  naming each bad line as ``file:line: field: reason``; so does a missing file.
- Events already stored with implausible values (:mod:`helios.ledger.validation`: written
  by an older Helios, or into the database directly) are left out of every reading, with
  a warning on stderr that counts them.
- A task with a start and no end is *running*, then *abandoned* once
  ``ledger.abandoned_after_s`` have passed: a crashed process; ``summary`` counts it as
  ended and not successful. A cancelled task (Ctrl-C) is counted apart and left out of the
  success rate; the acceptance rate is over the tasks the quality gate judged.
- Costs a price is known for are dollars; none known is ``unknown`` (``null`` in JSON).
  Times are ISO 8601 with the local offset.
- ``--since`` and ``--last`` select tasks by their start (a task that started before
  ``--since`` is left out whole, never cut in half); ``export`` selects events by their
  own time, so flag changes are exported too.

numpy, scipy and matplotlib (the ``analysis`` extra) are imported by the commands that need
them, so that ``helios --help`` neither pays for nor depends on them.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO, TypeVar

import typer

from helios.cli.context import cli_context, console_err, console_out, ledger_store, with_runtime
from helios.cli.ledger_view import print_breakdown, print_comparison, print_summary
from helios.errors import InputError
from helios.ledger.events import Event, TaskStarted
from helios.ledger.store import EventQuery, LedgerStore
from helios.ledger.validation import screen

if TYPE_CHECKING:
    from helios.ledger.jsonl import ImportReport

T = TypeVar("T")
EMPTY_LEDGER = "the ledger is empty: run `helios run` first or `helios ledger import`"

app = typer.Typer(
    help="Read the event ledger: summaries, A/B comparisons, import and export.",
    no_args_is_help=True,
)

SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since", help="Only tasks started since: 90m, 24h, 7d, or an ISO date (2025-01-31)."
    ),
]
LastOption = Annotated[
    int | None, typer.Option("--last", min=1, help="Only the most recent N tasks.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
PlotOption = Annotated[
    Path | None, typer.Option("--plot", help="Also draw the distributions to this PNG file.")
]


@app.command("summary")
def summary(
    ctx: typer.Context,
    since: SinceOption = None,
    last: LastOption = None,
    as_json: JsonOption = False,
    plot: PlotOption = None,
) -> None:
    """Success and acceptance rates, latency per stage, TTFT, cache hit rates, tokens, cost,
    fallbacks and errors."""
    from helios.analysis.summary import summarize

    events, empty = _tasks(ctx, since, last)
    result = summarize(events, abandoned_after_s=_abandoned_after_s(ctx))
    if empty is not None:
        _say_empty(empty, as_json, result.to_dict())
        return
    if plot is not None:
        from helios.analysis.plots import plot_summary

        plot_summary(result, plot)
    if as_json:
        _print_json(result.to_dict())
        return
    print_summary(result, console_out)
    if plot is not None:
        console_out.print(f"plot written to {plot}", style="dim")


@app.command("compare")
def compare(
    ctx: typer.Context,
    by: Annotated[
        str,
        typer.Option(
            "--by", help="flag:<name> (e.g. flag:async_thesis), model, provider, persona, ..."
        ),
    ],
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="The arm the others are measured against.")
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="Keep only tasks with field=value, e.g. flag:x=false."),
    ] = None,
    since: SinceOption = None,
    last: LastOption = None,
    as_json: JsonOption = False,
    plot: PlotOption = None,
) -> None:
    """Split tasks into arms and test each against a baseline (Welch's t-test, bootstrap)."""
    from helios.analysis.summary import compare as compare_tasks

    events, empty = _tasks(ctx, since, last)
    if empty is not None:
        _say_empty(empty, as_json, {"tasks": 0})
        return
    result = compare_tasks(
        events, by, baseline, where=where or (), abandoned_after_s=_abandoned_after_s(ctx)
    )
    if plot is not None:
        from helios.analysis.plots import plot_comparison

        plot_comparison(result, plot)
    if as_json:
        _print_json(result.to_dict())
        return
    print_comparison(result, console_out)
    if plot is not None:
        console_out.print(f"plot written to {plot}", style="dim")


@app.command("last")
def last(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The most recent task: each stage's start, duration, TTFT, model and cache hit."""
    from helios.analysis.summary import last_task

    events, empty = _tasks(ctx, None, 1)
    breakdown = last_task(events, abandoned_after_s=_abandoned_after_s(ctx))
    if empty is not None or breakdown is None:
        _say_empty(empty or EMPTY_LEDGER, as_json, {"tasks": 0})
        return
    if as_json:
        _print_json(breakdown.to_dict())
        return
    print_breakdown(breakdown, console_out)


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A JSONL file: one event per line.")],
) -> None:
    """Append the events of a JSONL file (Helios or reference-design shape) to the ledger:
    all of them, or none when a line is bad."""
    from helios.ledger.jsonl import import_jsonl

    if not file.exists():
        raise InputError(f"{file}: no such file")  # before the store: the likelier mistake
    report: ImportReport = _with_store(ctx, lambda store: import_jsonl(file, store))
    console_out.print(f"imported {report.imported} events from {file}")


@app.command("export")
def export(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only events since: 90m, 24h, 7d, or an ISO date."),
    ] = None,
    last: LastOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write the ledger's events as JSONL, one event per line."""
    from helios.ledger.jsonl import export_jsonl

    query = EventQuery(since=parse_since(since), last_tasks=last)
    with ExitStack() as stack:
        out: TextIO = sys.stdout
        if output is not None:
            try:
                out = stack.enter_context(output.open("w", encoding="utf-8"))
            except OSError as exc:
                raise InputError(f"--output {output}: cannot write it ({exc.strerror})") from None
        count = _with_store(ctx, lambda store: export_jsonl(store, query, out))
    if output is not None:
        console_out.print(f"exported {count} events to {output}")
    else:
        console_err.print(f"exported {count} events", style="dim")


# -- reading the ledger -------------------------------------------------------------------
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str | None, *, now: float | None = None) -> float | None:
    """``90m``, ``24h``, ``7d`` (ago) or an ISO date/time (local time unless it says) as
    seconds since the epoch."""
    if text is None:
        return None
    spec = text.strip().lower()
    match = _DURATION.fullmatch(spec)
    if match:
        amount, unit = match.groups()
        return (time.time() if now is None else now) - float(amount) * _UNIT_S[unit]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise InputError(
            f"--since {text!r}: expected a duration such as 90m, 24h or 7d, "
            "or an ISO date such as 2025-01-31 or 2025-01-31T09:00"
        ) from None


def _tasks(
    ctx: typer.Context, since: str | None, last: int | None
) -> tuple[list[Event], str | None]:
    """The events of the selected tasks, and why there are none (``None`` when there are)."""
    start = parse_since(since)

    async def read(store: LedgerStore) -> tuple[list[Event], str | None]:
        if start is None:
            events = await store.query(EventQuery(last_tasks=last))
        else:
            started = _plausible(await store.query(EventQuery(since=start, types=["task_started"])))
            recent = sorted(started, key=lambda event: event.timestamp)
            chosen = recent[-last:] if last is not None else recent
            ids = [event.task_id for event in chosen if isinstance(event, TaskStarted)]
            events = await store.query(EventQuery(task_ids=ids)) if ids else []
        events = _plausible(events, warn=True)
        if any(event.type in ("task_started", "task_finished") for event in events):
            return events, None
        held = await store.count()
        if held == 0:
            return [], EMPTY_LEDGER
        if since is not None:
            return [], f"no task started since {since} (the ledger holds {held} events)"
        return [], f"the ledger holds {held} events but no task: run `helios run` first"

    return _with_store(ctx, read)


def _plausible(events: list[Event], *, warn: bool = False) -> list[Event]:
    screened = screen(events)
    warning = screened.warning()
    if warn and warning is not None:
        console_err.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
    return screened.events


def _abandoned_after_s(ctx: typer.Context) -> float:
    return cli_context(ctx).settings().ledger.abandoned_after_s


def _with_store(ctx: typer.Context, work: Callable[[LedgerStore], Awaitable[T]]) -> T:
    settings = cli_context(ctx).settings()
    return with_runtime(settings, lambda runtime: work(ledger_store(runtime)))


def _say_empty(message: str, as_json: bool, document: dict[str, Any]) -> None:
    if as_json:
        _print_json({**document, "message": message})
    else:
        console_out.print(message)


def _print_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
