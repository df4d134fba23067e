"""``helios budget``: every governor budget window, what it used and when it resets."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Annotated, Any

import typer
from rich.table import Table

from helios.cli.context import cli_context, console_out, with_runtime
from helios.cli.formatting import moment, print_table
from helios.governance.governor import WindowStatus
from helios.runtime import Runtime

NO_BUDGETS = (
    "no budgets configured: add to helios.yaml e.g. `governor: {enabled: true, budgets: "
    "[{account: default, windows: [{name: 5h, kind: session, length_s: 18000, "
    "limit: 2000000}]}]}`"
)


def budget(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show each budget window: used, reserved, limit, remaining and when it resets."""
    settings = cli_context(ctx).settings()
    section = settings.governor
    if not section.budgets:
        if as_json:
            sys.stdout.write(json.dumps({"budgets": [], "message": NO_BUDGETS}) + "\n")
        else:
            console_out.print(NO_BUDGETS, markup=False, soft_wrap=True)
        return
    statuses = with_runtime(settings, _status)
    if as_json:
        payload = {"enabled": section.enabled, "budgets": _as_json(statuses)}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    for table in tables(statuses):
        print_table(table, console_out)
    if not section.enabled:
        console_out.print("the governor is disabled (governor.enabled: false)", markup=False)


async def _status(runtime: Runtime) -> list[WindowStatus]:
    assert runtime.governor is not None  # budgets are configured
    return await runtime.governor.status()


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:,.4g}"


def tables(statuses: list[WindowStatus]) -> list[Table]:
    by_account: dict[str, list[WindowStatus]] = defaultdict(list)
    for status in statuses:
        by_account[status.account].append(status)
    result = []
    for account, windows in by_account.items():
        table = Table(title=f"Budget {account}")
        table.add_column("window", no_wrap=True)
        table.add_column("kind", no_wrap=True)
        for numeric in ("used", "reserved", "limit", "remaining"):
            table.add_column(numeric, justify="right", no_wrap=True)
        table.add_column("resets at", no_wrap=True)
        for window in windows:
            table.add_row(
                window.window,
                window.kind,
                _number(window.used),
                _number(window.reserved),
                _number(window.limit),
                _number(window.remaining),
                moment(window.resets_at, missing="-"),
            )
        result.append(table)
    return result


def _as_json(statuses: list[WindowStatus]) -> list[dict[str, Any]]:
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for status in statuses:
        by_account[status.account].append(
            {
                "window": status.window,
                "kind": status.kind,
                "used": status.used,
                "reserved": status.reserved,
                "limit": status.limit,
                "remaining": status.remaining,
                "resets_at": status.resets_at,
                "resets_at_local": None if status.resets_at is None else moment(status.resets_at),
            }
        )
    return [{"account": account, "windows": windows} for account, windows in by_account.items()]
