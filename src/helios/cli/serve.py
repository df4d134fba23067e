"""``helios serve``: the HTTP server under uvicorn: ``/metrics``, ``/health``, the
response cache API under ``/api/v1/helios/cache`` and the key admin API under
``/api/v1/admin/keys`` (Swagger UI at ``/docs``).

Secure by default: with no API key in the store it serves unauthenticated calls only on a
loopback address, and says so; on any other address it refuses to start (one line, exit 2)
unless ``--allow-unauthenticated`` (``server.allow_unauthenticated``) says to serve it open.
Bound to a non-loopback address it always warns (one line on stderr); bound to loopback it
answers only requests whose Host header names this machine (``server.allowed_hosts`` adds
names).
"""

from __future__ import annotations

from typing import Annotated

import typer

from helios.cli.context import cli_context, console_err, with_runtime
from helios.errors import KeyStoreError
from helios.runtime import Runtime


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
    allow_unauthenticated: Annotated[
        bool,
        typer.Option(
            "--allow-unauthenticated",
            help="Serve a non-loopback address while no API key exists: anyone who reaches it"
            " may call (server.allow_unauthenticated). For a container behind its own network.",
        ),
    ] = False,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Run durable tasks here too (default), or only take them for `helios worker`s.",
        ),
    ] = True,
) -> None:
    """Serve Helios over HTTP: /metrics, /health, the cache API under
    /api/v1/helios/cache (lookup, store, invalidate, metrics, health) and the key admin API
    under /api/v1/admin/keys, durable tasks under /api/v1/tasks (run here too unless
    --no-worker); Swagger UI at /docs; the dashboard at /dashboard (an admin
    key once keys exist). Calls need an API key (`helios keys
    create`); with no key at all, only a loopback address is served, unauthenticated. With
    monitor.enabled the health monitor runs inside. Requests are logged one by one only
    with --access-log. On a non-loopback address it warns; on loopback it answers only
    Host headers naming this machine (server.allowed_hosts adds names)."""
    settings = cli_context(ctx).settings()
    if allow_unauthenticated:
        server = settings.server.model_copy(update={"allow_unauthenticated": True})
        settings = settings.model_copy(update={"server": server})
    from helios.server import create_app
    from helios.server.auth import exposure

    notice = exposure(  # ConfigError: exit 2
        host,
        has_keys=with_runtime(settings, _has_keys),
        allow_unauthenticated=settings.server.allow_unauthenticated,
    )
    if notice is not None:
        console_err.print(notice, markup=False, soft_wrap=True)

    try:
        import uvicorn
    except ImportError:
        from helios.errors import MissingDependency

        raise MissingDependency("uvicorn", "server", "The HTTP server") from None

    app = create_app(
        settings,
        warm_providers=True,
        host=host,
        port=port,
        announce_exposure=False,
        task_worker=worker,
    )
    # uvicorn handles Ctrl-C itself: it stops the app (lifespan shutdown included), then
    # re-raises the signal, which the CLI's entry point turns into exit code 130.
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log)
    uvicorn.Server(config).run()


async def _has_keys(runtime: Runtime) -> bool:
    """Whether any key exists; a store that cannot be read counts as holding keys: the
    server starts, and refuses every call (503) until the store answers."""
    try:
        return await runtime.keys.any_keys()
    except KeyStoreError as exc:
        console_err.print(f"warning: {exc}", markup=False, soft_wrap=True)
        return True
