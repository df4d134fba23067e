"""``helios models``: the catalogue, and which providers can be used right now."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from helios.catalog import Catalog, ModelEntry
from helios.cli.context import cli_context, console_out, with_runtime
from helios.cli.formatting import print_table
from helios.cli.local_models import local_models
from helios.runtime import Runtime


def models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the model catalogue and whether each provider is ready to use."""
    settings = cli_context(ctx).settings()

    async def look(runtime: Runtime) -> tuple[Catalog, dict[str, str]]:
        catalog = runtime.catalog
        names = sorted({entry.provider for entry in catalog} | set(settings.providers))
        return catalog, {name: _status(runtime, name) for name in names}

    catalog, status = with_runtime(settings, look)
    names = list(status)
    local = local_models(settings.local)
    if as_json:
        payload = {
            "default_model": settings.default_model,
            "providers": status,
            "models": [entry.model_dump(mode="json") for entry in catalog],
            "local_models": local,
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    print_table(_table(catalog), console_out)
    print_table(_local_table(local, catalog), console_out)
    console_out.print(f"default model: {settings.default_model}")
    for name in names:
        console_out.print(f"provider {name}: {status[name]}", markup=False)


def _status(runtime: Runtime, name: str) -> str:
    """``ready``, or why the provider cannot answer here (the router's own test of it)."""
    kind = runtime.registry.kind_of(name)
    model = next((e.id for e in runtime.catalog if e.provider == kind), "any")
    problem = runtime.registry.unready(f"{name}:{model}")
    return "ready" if problem is None else problem


def _table(catalog: Catalog) -> Table:
    table = Table(title="Model catalogue")
    table.add_column("model", no_wrap=True)
    table.add_column("tier", no_wrap=True)
    for numeric in ("context", "in", "out", "read", "min"):
        table.add_column(numeric, justify="right", no_wrap=True)
    table.caption = (
        "aliases under each id · in/out/read: $ per million input, output and cache-read"
        " tokens · min: prompt-cache minimum"
    )
    provider = None
    for entry in sorted(catalog, key=lambda e: e.provider):
        if entry.provider != provider:
            provider = entry.provider
            table.add_row(f"[bold]{provider}[/]", end_section=False)
        table.add_row(*_row(entry))
    return table


def _local_table(local: list[dict[str, str]], catalog: Catalog) -> Table:
    table = Table(title="Local models (llama.cpp; any persona can name one: llamacpp:<id>)")
    for column in ("model", "aliases", "what", "status"):
        table.add_column(column, no_wrap=column in ("model", "aliases"))
    for row in local:
        entry = catalog.find(row["id"])
        aliases = ", ".join(entry.aliases) if entry is not None else ""
        table.add_row(row["id"], aliases, row["name"], row["status"])
    table.caption = "licences and attribution: helios/data/licenses/NOTICE-models.md"
    return table


def _row(entry: ModelEntry) -> list[str]:
    p = entry.prices
    return [
        f"  {entry.id}" + (f"\n    [dim]{', '.join(entry.aliases)}[/]" if entry.aliases else ""),
        entry.tier,
        f"{entry.context_window // 1000:,}k",
        f"{p.input:g}",
        f"{p.output:g}",
        f"{p.cache_read:g}",
        "-" if entry.prompt_cache_min_tokens is None else str(entry.prompt_cache_min_tokens),
    ]
