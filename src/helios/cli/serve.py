"""``helios serve``: the HTTP server under uvicorn: ``/metrics``, ``/health``, and the
response cache API under ``/api/v1/helios/cache`` (Swagger UI at ``/docs``)."""

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
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every request (a line costs about a quarter of a cache lookup's CPU).",
        ),
    ] = False,
) -> None:
    """Serve Helios over HTTP: /metrics, /health and the cache API under
    /api/v1/helios/cache (lookup, store, invalidate, metrics, health); Swagger UI at /docs.
    With monitor.enabled the health monitor runs inside. Requests are logged one by one
    only with --access-log."""
    settings = cli_context(ctx).settings()
    from helios.server import create_app

    try:
        import uvicorn
    except ImportError:
        from helios.errors import MissingDependency

        raise MissingDependency("uvicorn", "server", "The HTTP server") from None

    app = create_app(settings, warm_providers=True)
    # uvicorn handles Ctrl-C itself: it stops the app (lifespan shutdown included), then
    # re-raises the signal, which the CLI's entry point turns into exit code 130.
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log)
    uvicorn.Server(config).run()
