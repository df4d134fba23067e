"""``helios flags``: list the feature flags, override one for every process, restore it.

Overrides live in the ledger store (with a ``flag_changed`` event naming who and why), so
every Helios process sharing that ledger picks a change up within
``flags.poll_interval_s``.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from helios.cli.context import cli_context, console_out, ledger_store, with_runtime
from helios.cli.formatting import moment, print_table
from helios.config.settings import Settings
from helios.ledger.events import FlagChanged, FlagValue
from helios.ledger.store import EventQuery, LedgerStore
from helios.ops.flags import (
    FLAGS,
    effective_flags,
    flag_spec,
    parse_flag_value,
    settings_value,
)

T = TypeVar("T")

app = typer.Typer(
    help="Feature flags: list them, override one at run time, remove an override.",
    no_args_is_help=True,
)

Reason = Annotated[str, typer.Option("--reason", "-r", help="Why (kept in the ledger).")]


@app.command("list")
def list_flags(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Every flag: its setting, the override in force (if any) and the effective value."""
    settings = cli_context(ctx).settings()
    overrides, changes = _with_store(settings, _overrides_and_changes)
    effective = effective_flags(settings, overrides, persona_defaults(settings))
    rows = [
        {
            "flag": flag,
            "setting": spec.setting,
            "settings_value": settings_value(settings, flag),
            "override": overrides.get(flag),
            "effective": effective.get(flag),
            **_who_set(overrides.get(flag), changes.get(flag)),
        }
        for flag, spec in FLAGS.items()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table()
    table.add_column("flag", min_width=max(map(len, FLAGS)), no_wrap=True)
    for column in ("settings value", "override", "effective", "setting", "overridden"):
        table.add_column(column)
    for row in rows:
        by = f"{row['override_set_at']} by {row['override_by']}" if row["override_by"] else "-"
        table.add_row(
            str(row["flag"]),
            _show(row["settings_value"], "(persona)"),
            _show(row["override"], "-"),
            _show(row["effective"], "?"),
            str(row["setting"]),
            Text(by),
        )
    print_table(table, console_out)


async def _overrides_and_changes(
    store: LedgerStore,
) -> tuple[dict[str, FlagValue], dict[str, FlagChanged]]:
    """The overrides in force, and each flag's latest change."""
    overrides = dict(await store.flag_overrides())
    latest: dict[str, FlagChanged] = {}
    for event in await store.query(EventQuery(types=["flag_changed"])):
        if isinstance(event, FlagChanged):
            latest[event.flag] = event
    return overrides, latest


def _who_set(override: FlagValue | None, change: FlagChanged | None) -> dict[str, str | None]:
    """When and by whom the override in force was set (ISO 8601; ``None`` without one)."""
    if override is None or change is None or change.new is None:
        return {"override_set_at": None, "override_by": None}
    return {"override_set_at": moment(change.timestamp), "override_by": change.actor}


@app.command("set")
def set_flag(
    ctx: typer.Context,
    flag: Annotated[str, typer.Argument(help=f"One of: {', '.join(FLAGS)}.")],
    value: Annotated[str, typer.Argument(help="true/false (on/off), or a number.")],
    reason: Reason,
) -> None:
    """Override FLAG with VALUE for every process using this ledger."""
    parsed = parse_flag_value(flag, value)  # a bad name or value fails before any I/O
    settings = cli_context(ctx).settings()
    event = _with_store(
        settings,
        lambda store: store.set_flag_override(flag, parsed, actor=_actor(), reason=reason),
    )
    _report(event)


@app.command("unset")
def unset_flag(
    ctx: typer.Context,
    flag: Annotated[str, typer.Argument(help="The flag whose override to remove.")],
    reason: Reason,
) -> None:
    """Remove FLAG's override: the value from the settings applies again."""
    flag_spec(flag)
    settings = cli_context(ctx).settings()
    event = _with_store(
        settings,
        lambda store: store.set_flag_override(flag, None, actor=_actor(), reason=reason),
    )
    _report(event)


def persona_defaults(settings: Settings) -> dict[str, FlagValue]:
    """The shipped personas' ``streaming``, for the flags the settings leave unset."""
    from helios.pipeline.personas import load_personas

    personas = load_personas(settings)
    return {
        f"{role}_streaming": personas[role].streaming
        for role in ("thesis", "antithesis", "synthesis")
        if role in personas
    }


def _with_store(settings: Settings, operation: Callable[[LedgerStore], Awaitable[T]]) -> T:
    return with_runtime(settings, lambda runtime: operation(ledger_store(runtime)))


def _actor() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers)
        return "unknown"


def _report(event: FlagChanged) -> None:
    new = "(settings)" if event.new is None else _show(event.new, "")
    console_out.print(f"{event.flag}: {_show(event.old, '(settings)')} -> {new}")


def _show(value: object, missing: str) -> str:
    if value is None:
        return missing
    return str(value).lower() if isinstance(value, bool) else str(value)
