"""The Typer application and the one place where errors become exit codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.exceptions import TyperException

from helios._version import __version__
from helios.cli import (
    ask,
    budget,
    cache,
    dag,
    flags,
    keys,
    ledger,
    models,
    monitor,
    plan,
    route,
    run,
    serve,
    sim,
    tasks,
    worker,
)
from helios.cli.context import CliContext, console_err, print_error
from helios.cli.logs import warnings_on_stderr
from helios.errors import ConfigError, HeliosError, InputError

EXIT_ERROR = 1
EXIT_CONFIG = 2  # a mistake in what the user gave: settings, arguments, documents
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="helios",
    help="Helios: run LLM workloads cheaper, faster and under control.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"helios {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML settings file (default: ./helios.yaml)"),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    ctx.obj = CliContext(config_file=config)


app.command("run")(run.run)
app.command("ask")(ask.ask)
app.command("models")(models.models)
app.command("sim")(sim.sim)
app.add_typer(ledger.app, name="ledger")
app.add_typer(flags.app, name="flags")
app.command("monitor")(monitor.monitor)
app.command("serve")(serve.serve)
app.command("plan")(plan.plan)
app.add_typer(dag.app, name="dag")
app.command("budget")(budget.budget)
app.command("route")(route.route)
app.add_typer(cache.app, name="cache")
app.add_typer(keys.app, name="keys")
app.command("submit")(tasks.submit)
app.add_typer(tasks.app, name="tasks")
app.command("worker")(worker.worker)


def main() -> None:
    """Entry point: a user mistake is one line on stderr and a non-zero exit, never a traceback."""
    try:
        with warnings_on_stderr():
            result = app(standalone_mode=False)
    except TyperException as exc:  # usage errors: unknown option, value out of range, ...
        show = getattr(exc, "show", None)  # typer's vendored click formats its own usage errors
        if callable(show):
            show()
        else:
            print_error(exc)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        console_err.print("interrupted", style="yellow")
        sys.exit(EXIT_INTERRUPTED)
    except (ConfigError, InputError) as exc:
        print_error(exc)
        sys.exit(EXIT_CONFIG)
    except HeliosError as exc:
        print_error(exc)
        sys.exit(EXIT_ERROR)
    # In non-standalone mode typer returns exit codes instead of exiting, and it turns
    # Ctrl-C into code 130 before our handler above can see the KeyboardInterrupt.
    code = result if isinstance(result, int) else 0
    if code == EXIT_INTERRUPTED:
        console_err.print("interrupted", style="yellow")
    sys.exit(code)
