"""``helios cache``: what the response cache holds, emptying part of it, filling it from a file.

A CLI process has only just opened the cache, so its hit counters would all be zero:
``stats`` shows what is stored (entries and health per layer) and how the cache is
configured instead; the server's ``/api/v1/helios/cache/metrics`` has the live counters.

``invalidate`` refuses to empty whole layers unless asked with ``--all``. ``warm`` checks
the whole file before it stores anything, so a bad line never leaves a half-warmed cache;
its entries are keyed exactly as the engine keys the same question, so they answer real
calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.table import Table
from rich.text import Text

from helios.analysis.cache_usage import EVENT_TYPES as USAGE_EVENTS
from helios.analysis.cache_usage import cache_usage_by_persona
from helios.cache.exact import CachedReply
from helios.cache.manager import CacheManager
from helios.cache.reports import API_LAYER_NAMES, LAYERS, Layer
from helios.cache.supplied import Turn, selection_problem, supplied_reply, supplied_request
from helios.cli.context import cli_context, console_err, console_out, with_runtime
from helios.cli.formatting import print_table, usd_total
from helios.config.settings import Settings
from helios.errors import ConfigError, HeliosError, InputError
from helios.ledger.store import EventQuery
from helios.ledger.validation import screen
from helios.messages import Request
from helios.providers.registry import ProviderRegistry
from helios.runtime import Runtime

T = TypeVar("T")
EXIT_NOT_STORED = 1
MAX_REPORTED_LINES = 20

app = typer.Typer(
    help="The response cache: entries and health, invalidation, warming from a file.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
_LAYER_BY_NAME: dict[str, Layer] = {
    **{name: layer for layer, name in API_LAYER_NAMES.items()},
    **{layer: layer for layer in LAYERS},
}


@app.command("stats")
def stats(
    ctx: typer.Context,
    hours: Annotated[
        float,
        typer.Option(help="Window of the per-persona figures, in hours.", min=0.001),
    ] = 24.0,
    as_json: JsonOption = False,
) -> None:
    """Entries and health per layer, the configuration (backends, TTLs, threshold), and per
    persona (from the ledger, every process that records into it) hits, misses and what the
    hits saved over the last HOURS."""
    settings = cli_context(ctx).settings()
    config = _config(settings)
    if not settings.cache.enabled:
        message = "the response cache is disabled (cache.enabled: false)"
        if as_json:
            _print_json({"enabled": False, "message": message, "config": config})
        else:
            console_out.print(message)
        return

    async def look(runtime: Runtime) -> dict[str, Any]:
        manager = _cache_of(runtime)
        entries = await manager.entries()
        health = await manager.health()
        layers = {
            layer: {
                "name": API_LAYER_NAMES[layer],
                "status": state.status,
                "backend": state.backend,
                "detail": state.detail,
                "entries": entries[layer] if state.status != "disabled" else None,
            }
            for layer, state in health.layers.items()
        }
        personas = await _persona_usage(runtime, hours)
        return {
            "enabled": True,
            "status": health.status,
            "layers": layers,
            "config": config,
            "personas": personas,
            "personas_window_h": hours,
        }

    document = with_runtime(settings, look)
    if as_json:
        _print_json(document)
        return
    table = Table(title=f"response cache: {document['status']}")
    for column in ("layer", "status", "entries", "backend", "detail"):
        table.add_column(column, overflow="fold")
    for layer, row in document["layers"].items():
        entries = "-" if row["entries"] is None else str(row["entries"])
        backend = row["backend"] or "-"
        cells = (f"{layer} {row['name']}", row["status"], entries, backend, row["detail"])
        # Text, not markup: details such as "pip install 'helios[semantic]'" hold brackets
        table.add_row(*(Text(cell) for cell in cells))
    print_table(table, console_out)
    _print_personas(document["personas"], hours)
    for line in _config_lines(config):
        console_out.print(line, markup=False)


async def _persona_usage(runtime: Runtime, hours: float) -> dict[str, Any] | None:
    """Per-persona figures from the ledger's events of the last ``hours`` (``None``: the
    ledger is off, so nothing was recorded)."""
    if runtime.store is None:
        return None
    since = time.time() - hours * 3600
    screened = screen(await runtime.store.query(EventQuery(since=since, types=list(USAGE_EVENTS))))
    if screened.skipped:
        console_err.print(f"warning: {screened.warning()}", style="yellow", markup=False)
    usage = cache_usage_by_persona(screened.events)
    return {name: persona.to_dict() for name, persona in usage.items()}


def _print_personas(personas: dict[str, Any] | None, hours: float) -> None:
    if personas is None:
        console_out.print("per persona: the ledger is disabled, so no call was recorded")
        return
    if not personas:
        console_out.print(f"per persona: no model call recorded in the last {hours:g} h")
        return
    table = Table(title=f"per persona, last {hours:g} h (all processes sharing the ledger)")
    for column in ("persona", "calls", "hits", "misses", "hit rate", "L2", "L3", "saved"):
        table.add_column(column, justify="left" if column == "persona" else "right")
    table.add_column("saved time", justify="right")
    for name, row in personas.items():
        by_layer = row["hits_by_layer"]
        rate = "-" if row["hit_rate"] is None else f"{row['hit_rate']:.0%}"
        table.add_row(
            Text(name),
            str(row["calls"]),
            str(row["hits"]),
            str(row["misses"]),
            rate,
            str(by_layer.get("L2", 0)),
            str(by_layer.get("L3", 0)),
            usd_total(row["cost_saved_usd"], unpriced=row["unpriced_hits"], calls=row["hits"]),
            f"{row['time_saved_s']:.2f} s",
        )
    print_table(table, console_out)


@app.command("invalidate")
def invalidate(
    ctx: typer.Context,
    layer: Annotated[
        str | None, typer.Option("--layer", help="L1, L2 or L3 (default: every layer).")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    task_type: Annotated[
        str | None, typer.Option("--task-type", help="Only this task type.")
    ] = None,
    key: Annotated[str | None, typer.Option("--key", help="One L2 key.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Empty the layer(s) entirely.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Remove the entries of a tenant, a task type or a key; or, with --all, every entry."""
    chosen = _layer(layer) if layer is not None else None
    _check_selection(chosen, tenant, task_type, key, everything)
    settings = cli_context(ctx).settings()
    if not settings.cache.enabled:
        raise ConfigError("the response cache is disabled (cache.enabled: false)")

    async def purge(manager: CacheManager) -> dict[Layer, int]:
        return await manager.invalidate(layer=chosen, key=key, tenant=tenant, task_type=task_type)

    removed = _with_cache(settings, purge)
    if as_json:
        _print_json({"removed": removed, "total": sum(removed.values())})
        return
    if not removed:
        console_out.print("no enabled layer holds such entries: nothing removed")
        return
    per_layer = ", ".join(f"{name} {count}" for name, count in removed.items())
    console_out.print(f"removed {sum(removed.values())} entries ({per_layer})")


@app.command("warm")
def warm(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help='JSONL: one {"input_text" (or "question"), "response", ...} object a line.'
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Store the question/response pairs of a JSONL file in L2 and L3.

    Optional fields per line: task_type, tenant, system_prompt, model, messages (earlier
    turns: [{"role", "content"}]), temperature, tokens_used (output tokens), input_tokens.
    The whole file is checked first: one bad line and nothing is stored.
    """
    settings = cli_context(ctx).settings()
    if not settings.cache.enabled:
        raise ConfigError("the response cache is disabled (cache.enabled: false)")

    async def fill(runtime: Runtime) -> WarmReport:
        planned = _plan_file(file, runtime.registry)  # the whole file, before any store
        manager = _cache_of(runtime)
        report = WarmReport(entries=len(planned))
        for plan in planned:
            await _store(manager, plan, report)
        return report

    report = with_runtime(settings, fill)
    if as_json:
        _print_json(report.to_dict())
    else:
        _print_warm_report(file, report)
    if report.failed:
        raise typer.Exit(EXIT_NOT_STORED)


# -- warm -----------------------------------------------------------------------------------
class WarmEntry(BaseModel):
    """One line of a warm file."""

    model_config = ConfigDict(extra="forbid")

    input_text: str | None = Field(default=None, min_length=1)
    question: str | None = Field(default=None, min_length=1)
    response: str = Field(min_length=1)
    task_type: str = Field(default="general", min_length=1)
    tenant: str = Field(default="default", min_length=1)
    system_prompt: str | None = None
    model: str | None = None
    messages: list[Turn] = Field(default_factory=list)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    tokens_used: int = Field(default=0, ge=0)
    input_tokens: int = Field(default=0, ge=0)

    @property
    def text(self) -> str:
        text = self.input_text if self.input_text is not None else self.question
        assert text is not None  # checked by _parse_line
        return text


@dataclass(frozen=True, slots=True)
class _Planned:
    line: int
    request: Request
    provider: str
    model: str
    reply: CachedReply


@dataclass(slots=True)
class WarmReport:
    entries: int
    stored: dict[Layer, int] = field(default_factory=dict)
    skipped: dict[Layer, list[tuple[int, str]]] = field(default_factory=dict)
    """Lines a layer chose not to keep, with why (L3: long question, high temperature)."""
    failed: dict[Layer, list[int]] = field(default_factory=dict)
    """Lines a layer's store failed to keep."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "stored": self.stored,
            "skipped": {layer: dict(lines) for layer, lines in self.skipped.items()},
            "failed": self.failed,
        }


def _plan_file(file: Path, registry: ProviderRegistry) -> list[_Planned]:
    """Every entry of ``file`` ready to store, or an InputError naming each bad
    ``FILE:LINE`` and field; nothing is stored before the whole file is known good."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{file}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{file}: not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{file}: cannot read it ({exc.strerror})") from None
    planned: list[_Planned] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            planned.append(_plan(number, _parse_line(raw), registry))
        except ValueError as exc:
            problems.append(f"{file}:{number}: {exc}")
    if problems:
        _refuse_file(file, problems)
    if not planned:
        raise InputError(f"{file}: no entries to store")
    return planned


def _parse_line(raw: str) -> WarmEntry:
    try:
        # pydantic's JSON parser, unlike json.loads, refuses "\ud800": no store could keep it
        entry = WarmEntry.model_validate_json(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] == "json_invalid":
            raise ValueError(f"not JSON ({error['ctx']['error']})") from None
        if error["type"] == "model_type":
            raise ValueError("expected a JSON object") from None
        where = ".".join(str(part) for part in error["loc"])
        raise ValueError(f"{where}: {error['msg']}") from None
    if entry.input_text is None and entry.question is None:
        raise ValueError("input_text (or question): missing")
    if entry.input_text is not None and entry.question is not None:
        raise ValueError("input_text and question: give one, not both")
    return entry


def _refuse_file(file: Path, problems: list[str]) -> None:
    for problem in problems[:MAX_REPORTED_LINES]:
        console_err.print(problem, markup=False, highlight=False)
    if len(problems) > MAX_REPORTED_LINES:
        console_err.print(f"... and {len(problems) - MAX_REPORTED_LINES} more", markup=False)
    if len(problems) == 1:
        raise InputError(f"{problems[0]}; nothing stored")
    raise InputError(f"{file}: {len(problems)} bad lines; nothing stored")


def _plan(line: int, entry: WarmEntry, registry: ProviderRegistry) -> _Planned:
    """The request the engine would make for this entry, and the reply to cache for it."""
    try:
        provider, model = registry.parse(entry.model or "")
    except ConfigError as exc:
        raise ValueError(f"model: {exc}") from None
    request = supplied_request(
        entry.text,
        turns=entry.messages,
        model=entry.model,
        system=entry.system_prompt,
        task_type=entry.task_type,
        tenant=entry.tenant,
        temperature=entry.temperature,
    )
    reply = supplied_reply(
        entry.response,
        provider,
        model,
        input_tokens=entry.input_tokens,
        output_tokens=entry.tokens_used,
    )
    return _Planned(line, request, provider, model, reply)


async def _store(manager: CacheManager, plan: _Planned, report: WarmReport) -> None:
    stored = await manager.store(plan.request, plan.provider, plan.model, plan.reply)
    for layer in stored:
        report.stored[layer] = report.stored.get(layer, 0) + 1
    if manager.exact is not None and "L2" not in stored:
        report.failed.setdefault("L2", []).append(plan.line)
    if manager.semantic is not None and "L3" not in stored:
        skip = manager.semantic.skip_reason(plan.request)
        if skip is not None:
            report.skipped.setdefault("L3", []).append((plan.line, skip))
        else:
            report.failed.setdefault("L3", []).append(plan.line)


def _print_warm_report(file: Path, report: WarmReport) -> None:
    per_layer = ", ".join(f"{layer} {count}" for layer, count in sorted(report.stored.items()))
    console_out.print(
        f"stored {report.entries} entries from {file}: {per_layer or 'none'}", markup=False
    )
    for layer, skipped in report.skipped.items():
        console_out.print(f"{layer} did not keep {len(skipped)}:", markup=False)
        for line, reason in skipped[:MAX_REPORTED_LINES]:
            console_out.print(f"  line {line}: {reason}", markup=False)
    for layer, lines in report.failed.items():
        shown = ", ".join(map(str, lines[:MAX_REPORTED_LINES]))
        console_err.print(
            f"{layer}: the store failed for {len(lines)} entries (lines {shown}); "
            "see `helios cache stats`",
            markup=False,
        )


# -- shared ---------------------------------------------------------------------------------
def _layer(name: str) -> Layer:
    layer = _LAYER_BY_NAME.get(name.strip().upper())
    if layer is None:
        raise InputError(f"--layer {name}: one of L1, L2, L3 (or {', '.join(_LAYER_BY_NAME)})")
    return layer


def _check_selection(
    layer: Layer | None, tenant: str | None, task_type: str | None, key: str | None, all_: bool
) -> None:
    selectors = [
        name
        for name, value in (("--tenant", tenant), ("--task-type", task_type), ("--key", key))
        if value is not None
    ]
    where = f"layer {layer}" if layer is not None else "every layer"
    if not selectors and not all_:
        raise InputError(
            f"nothing selected: give --tenant, --task-type or --key, or --all to empty {where}"
        )
    if selectors and all_:
        raise InputError(f"--all empties {where}: leave out {', '.join(selectors)}, or --all")
    problem = selection_problem(layer, key=key, tenant=tenant, task_type=task_type)
    if problem is not None:
        option, message = problem
        raise InputError(f"--{option}: {message}")


def _with_cache(settings: Settings, operation: Callable[[CacheManager], Awaitable[T]]) -> T:
    """Run ``operation`` on the runtime's cache, closed afterwards."""
    return with_runtime(settings, lambda runtime: operation(_cache_of(runtime)))


def _cache_of(runtime: Runtime) -> CacheManager:
    if runtime.cache is None:  # the callers check cache.enabled first
        raise HeliosError("the response cache is disabled (cache.enabled: false)")
    return runtime.cache


def _config(settings: Settings) -> dict[str, Any]:
    """What the settings ask of each layer; no URL (it may hold a password)."""
    cache = settings.cache
    semantic = cache.semantic
    l2: dict[str, Any] = {
        "backend": cache.backend,
        "ttl_s": cache.ttl_s,
        "max_entries": cache.max_entries if cache.backend != "redis" else None,
    }
    if cache.backend == "sqlite":
        l2["path"] = str(cache.resolved_path())
    l3: dict[str, Any] = {
        "enabled": semantic.enabled,
        "index": semantic.index,
        "embedder": semantic.embedder,
        "threshold": semantic.threshold,
        "task_thresholds": semantic.task_thresholds,
        "ttl_s": semantic.ttl_s,
        "max_temperature": semantic.max_temperature,
        "verify": semantic.verify,
    }
    if semantic.index == "usearch":
        l3["path"] = str(cache.semantic_path())
    return {
        "enabled": cache.enabled,
        "L1": {"enabled": cache.prompt.enabled, "ttl": cache.prompt.ttl},
        "L2": l2,
        "L3": l3,
    }


def _config_lines(config: dict[str, Any]) -> list[str]:
    l1, l2, l3 = config["L1"], config["L2"], config["L3"]
    lines = [
        f"L1: {'on' if l1['enabled'] else 'off'}, breakpoint TTL {l1['ttl']}",
        f"L2: {l2['backend']}"
        + (f" {l2['path']}" if "path" in l2 else "")
        + f", TTL {l2['ttl_s']:g} s"
        + (f", at most {l2['max_entries']} entries" if l2["max_entries"] is not None else ""),
    ]
    if l3["enabled"]:
        per_task = "".join(f", {task} {value:g}" for task, value in l3["task_thresholds"].items())
        lines.append(
            f"L3: {l3['index']}"
            + (f" {l3['path']}" if "path" in l3 else "")
            + f", {l3['embedder']} embedder, threshold {l3['threshold']:g}{per_task}"
            + f", TTL {l3['ttl_s']:g} s, up to temperature {l3['max_temperature']:g}"
            + f", verifier {'on' if l3['verify'] else 'off'}"
        )
    else:
        lines.append("L3: off")
    return lines


def _print_json(document: object) -> None:
    typer.echo(json.dumps(document, indent=2))
