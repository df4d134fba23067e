"""``helios keys``: the API keys of ``helios serve``: create (the key shown once), list,
revoke.

A bad option is one line naming it (exit 2). ``create`` writes the key alone on stdout (so
``KEY=$(helios keys create --tenant acme)`` works) and what it made on stderr; ``list``
never shows a secret: the store does not have them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from helios.cli.context import cli_context, console_err, console_out, with_runtime
from helios.cli.formatting import moment, print_table
from helios.errors import InputError
from helios.keys.model import (
    ApiKey,
    NewKey,
    check_rpm,
    check_tenant,
    describe,
    key_id_of,
    parse_budget,
    parse_duration,
    parse_models,
)
from helios.runtime import Runtime

T = TypeVar("T")
V = TypeVar("V")

app = typer.Typer(
    help="API keys for `helios serve`: create (shown once), list, revoke.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("create")
def create(
    ctx: typer.Context,
    tenant: Annotated[
        str, typer.Option(help="The tenant the key acts for (letters, digits, _ . -).")
    ],
    name: Annotated[str | None, typer.Option(help="A label, e.g. who holds the key.")] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="May use the admin API and name any tenant.")
    ] = False,
    budget: Annotated[
        str | None,
        typer.Option(help="Spend per sliding window, e.g. 20usd/5h, 100000tokens/1d."),
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute at most.")] = None,
    models: Annotated[
        str | None, typer.Option(help="The models it may call, e.g. sonnet,gpt-mini.")
    ] = None,
    expires: Annotated[str | None, typer.Option(help="Lifetime, e.g. 30d, 12h, 2w.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a key and print it: the one time it is shown (only its hash is stored)."""
    now = time.time()
    new = NewKey(
        tenant=_option("--tenant", check_tenant, tenant),
        name=name,
        admin=admin,
        budget=None if budget is None else _option("--budget", parse_budget, budget),
        rpm=None if rpm is None else _option("--rpm", check_rpm, rpm),
        models=None if models is None else _option("--models", parse_models, models),
        expires_at=None if expires is None else now + _option("--expires", parse_duration, expires),
    )
    settings = cli_context(ctx).settings()

    async def made(runtime: Runtime) -> tuple[ApiKey, str]:
        return await runtime.keys.create(new, now=now)

    key, plaintext = with_runtime(settings, made)
    if as_json:
        _print_json({**describe(key, now), "key": plaintext})
        return
    sys.stdout.write(plaintext + "\n")
    console_err.print(
        f"created key {key.id} for tenant {key.tenant}{_limits(key)}: store it now, it is"
        " shown only this once",
        markup=False,
        soft_wrap=True,
    )


@app.command("list")
def list_keys(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every key, revoked and expired ones too (never a secret)."""
    settings = cli_context(ctx).settings()

    async def listed(runtime: Runtime) -> list[ApiKey]:
        return await runtime.keys.list_keys()

    keys = with_runtime(settings, listed)
    now = time.time()
    if as_json:
        _print_json({"keys": [describe(key, now) for key in keys]})
        return
    if not keys:
        console_out.print("no keys: create one with `helios keys create --tenant NAME`")
        return
    print_table(_table(keys, now), console_out)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (as `helios keys list` shows).")],
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: refused at once here, within keys.cache_s by running servers."""
    wanted = key_id_of(key_id) or key_id  # the whole key works too; its secret is not echoed
    settings = cli_context(ctx).settings()

    async def revoked(runtime: Runtime) -> ApiKey | None:
        return await runtime.keys.revoke(wanted)

    key = with_runtime(settings, revoked)
    if key is None:
        raise InputError("no such key: `helios keys list` shows the ids")
    if as_json:
        _print_json(describe(key, time.time()))
        return
    console_out.print(f"revoked key {key.id} of tenant {key.tenant}", markup=False)


def _option(option: str, check: Callable[[V], T], value: V) -> T:
    """``check(value)``, or a one-line :class:`InputError` naming the option."""
    try:
        return check(value)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None


def _limits(key: ApiKey) -> str:
    parts = ["admin"] if key.admin else []
    if key.budget is not None:
        parts.append(str(key.budget))
    if key.rpm is not None:
        parts.append(f"{key.rpm} rpm")
    if key.models is not None:
        parts.append("models " + ",".join(key.models))
    if key.expires_at is not None:
        parts.append(f"expires {moment(key.expires_at)}")
    return f" ({'; '.join(parts)})" if parts else ""


def _table(keys: list[ApiKey], now: float) -> Table:
    table = Table(title="API keys")
    for column in ("id", "tenant", "name", "admin", "budget", "rpm", "models"):
        table.add_column(column, no_wrap=column == "id")
    for column in ("expires", "created", "revoked", "status"):
        table.add_column(column, no_wrap=True)
    for key in keys:
        table.add_row(
            key.id,
            key.tenant,
            key.name or "-",
            "yes" if key.admin else "-",
            str(key.budget) if key.budget is not None else "-",
            str(key.rpm) if key.rpm is not None else "-",
            ",".join(key.models) if key.models is not None else "any",
            moment(key.expires_at, missing="-"),
            moment(key.created_at, missing="-"),
            moment(key.revoked_at, missing="-"),
            key.status(now),
        )
    return table


def _print_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")
