"""``helios monitor``: watch the ledger's health; alert, and roll feature flags back.

Each check reads the last ``--hours`` of events, prints the rates and applies the rules:
the defaults (unless ``monitor.default_rules`` is off) and ``monitor.rules``. A firing rule
does its actions: ``alert`` (a log line and the webhook), ``rollback`` (its flag's override,
set once). With ``--metrics-port`` the results are also served to Prometheus on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from helios.cli.context import cli_context, console_out, ledger_store
from helios.cli.formatting import moment, print_table
from helios.config.ops import MonitorRule, MonitorSettings
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
        typer.Option(help="Seconds between checks (default: monitor.interval_s, 3600)."),
    ] = None,
    alert: Annotated[
        bool | None,
        typer.Option(
            "--alert/--no-alert",
            help="Let rules alert (log, webhook) (default: monitor.alert).",
        ),
    ] = None,
    rollback: Annotated[
        bool | None,
        typer.Option(
            "--rollback/--no-rollback",
            help="Let rules roll their flags back (default: monitor.rollback).",
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
    """Check the ledger's recent health; rules that fire alert and roll flags back."""
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
        return MonitorSettings.model_validate({**base.model_dump(exclude_unset=True), **given})
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
    console_out.print(
        f"[bold]{moment(report.checked_at)}[/] · {report.tasks} tasks in the last "
        f"{report.window_hours:g} h"
    )
    metrics = Table("metric", "value", "tasks", title="Health", title_justify="left")
    for name, measured in report.metrics.items():
        value = "-" if measured.value is None else f"{measured.value:.3g}"
        metrics.add_row(name, value, str(measured.samples))
    print_table(metrics, console_out)
    rules = Table("rule", "condition", "actions", "status", title="Rules", title_justify="left")
    for outcome in report.rules:
        rule = outcome.rule
        condition = f"{rule.metric} {rule.op} {rule.threshold:g}, ≥ {rule.min_samples} tasks"
        rules.add_row(Text(rule.label), condition, _actions(rule), _status(outcome))
    print_table(rules, console_out)
    for outcome in report.firing:
        console_out.print(
            f"[bold red]firing[/]: {escape(outcome.rule.label)}: {outcome.reason} "
            f"({outcome.action})"
        )


def _actions(rule: MonitorRule) -> str:
    return ", ".join(
        f"rollback {rule.flag}={_value(rule.value)}" if action == "rollback" else action
        for action in rule.actions
    )


def _value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _status(outcome: RuleOutcome) -> str:
    flag, value = outcome.rule.flag, _value(outcome.rule.value)
    return {
        "none": "ok",
        "too_few_samples": "too few tasks",
        "rolled_back": f"rolled back: {flag}={value}",
        "already_rolled_back": f"firing ({flag}={value} already)",
        "alerted": "firing, alerted",
        "firing": "firing (its actions are off)",
        "rollback_failed": "firing, rollback failed",
    }.get(outcome.action, outcome.action)
