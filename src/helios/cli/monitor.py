"""``helios monitor``: watch the ledger's health and roll feature flags back on their own.

Each check reads the last ``--hours`` of events, prints the rates and applies the rules of
``monitor.rules`` (a firing rule sets its flag's override, once, and alerts). With
``--metrics-port`` the results are also served to Prometheus on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from helios.cli.context import cli_context, console_out, ledger_store
from helios.config.ops import MonitorSettings
from helios.config.settings import Settings
from helios.errors import ConfigError
from helios.runtime import Runtime

if TYPE_CHECKING:
    from helios.ops.metrics import HeliosMetrics
    from helios.ops.monitor import HealthReport, RuleOutcome


def monitor(
    ctx: typer.Context,
    hours: Annotated[
        float | None, typer.Option(help="Window to measure, in hours (default: monitor.hours).")
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between checks (default: monitor.interval_s)."),
    ] = None,
    alert: Annotated[
        bool | None,
        typer.Option(
            "--alert/--no-alert",
            help="Alert (log, webhook) when a rule fires (default: monitor.alert).",
        ),
    ] = None,
    rollback: Annotated[
        bool | None,
        typer.Option(
            "--rollback/--no-rollback",
            help="Set the rule's flag when it fires (default: monitor.rollback).",
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Check once and exit.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each report as one JSON line.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve /metrics on 127.0.0.1:PORT.", min=1, max=65535),
    ] = None,
) -> None:
    """Check the ledger's recent health; roll back flags whose rules fire."""
    settings = cli_context(ctx).settings()
    config = monitor_settings(
        settings.monitor,
        {"hours": hours, "interval_s": interval, "alert": alert, "rollback": rollback},
    )
    asyncio.run(_watch(settings, config, once=once, as_json=as_json, metrics_port=metrics_port))


def monitor_settings(base: MonitorSettings, options: dict[str, Any]) -> MonitorSettings:
    """``base`` with the options given on the command line, validated."""
    given = {name: value for name, value in options.items() if value is not None}
    try:
        return MonitorSettings.model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        error = exc.errors()[0]
        names = {"interval_s": "--interval", "hours": "--hours"}
        where = names.get(str(error["loc"][0]), str(error["loc"][0]))
        raise ConfigError(f"command line: {where}: {error['msg']}") from None


async def _watch(
    settings: Settings,
    config: MonitorSettings,
    *,
    once: bool,
    as_json: bool,
    metrics_port: int | None,
) -> None:
    metrics = _serve_metrics(metrics_port) if metrics_port is not None else None
    try:
        async with Runtime.open(settings.model_copy(update={"monitor": config})) as runtime:
            ledger_store(runtime)  # a disabled ledger is refused before the first check
            health = runtime.monitor
            assert health is not None  # the ledger is enabled

            def show(report: HealthReport) -> None:
                if metrics is not None:
                    metrics[0].observe_health(report)
                _print(report, as_json=as_json)

            await health.run(config.interval_s, once=once, on_report=show)
    finally:
        if metrics is not None:
            metrics[1].shutdown()
            metrics[1].server_close()


def _serve_metrics(port: int) -> tuple[HeliosMetrics, Any]:
    from prometheus_client import start_http_server

    from helios.ops.metrics import HeliosMetrics

    metrics = HeliosMetrics()
    try:
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    except OSError as exc:
        raise ConfigError(f"--metrics-port: cannot listen on 127.0.0.1:{port}: {exc}") from None
    return metrics, server


def _print(report: HealthReport, *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.checked_at))
    table = Table(
        "metric",
        "value",
        "tasks",
        "rule",
        "status",
        title=f"{when} · {report.tasks} tasks in the last {report.window_hours:g} h",
    )
    rules: dict[str, RuleOutcome] = {outcome.rule.metric: outcome for outcome in report.rules}
    for name, measured in report.metrics.items():
        value = "-" if measured.value is None else f"{measured.value:.3g}"
        outcome = rules.get(name)
        rule = status = ""
        if outcome is not None:
            rule = f"{outcome.rule.op} {outcome.rule.threshold:g} → {outcome.rule.flag}"
            status = _status(outcome.action, outcome.rule.flag, outcome.rule.value)
        table.add_row(name, value, str(measured.samples), rule, status)
    console_out.print(table)
    for outcome in report.firing:
        console_out.print(f"[bold red]firing[/]: {outcome.reason} ({outcome.action})")


def _status(action: str, flag: str, value: object) -> str:
    return {
        "none": "ok",
        "too_few_samples": "too few tasks",
        "rolled_back": f"rolled back: {flag}={value}",
        "already_rolled_back": f"firing ({flag}={value} already)",
        "alerted": "firing",
        "rollback_failed": "firing, rollback failed",
    }.get(action, action)
