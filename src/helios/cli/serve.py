"""``helios serve``: the HTTP server (``/metrics``, ``/health``) under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from helios.cli.context import cli_context


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8002,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level (debug, info, warning, error).")
    ] = "info",
) -> None:
    """Serve Helios over HTTP; with monitor.enabled the health monitor runs inside."""
    settings = cli_context(ctx).settings()
    from helios.server import create_app

    try:
        import uvicorn
    except ImportError:
        from helios.errors import MissingDependency

        raise MissingDependency("uvicorn", "server", "The HTTP server") from None

    app = create_app(settings)
    # uvicorn handles Ctrl-C itself: it stops the app (lifespan shutdown included), then
    # re-raises the signal, which the CLI's entry point turns into exit code 130.
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level)).run()
