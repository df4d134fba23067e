"""The FastAPI application factory.

``create_app(settings)`` builds the app once; its lifespan opens a
:class:`~helios.runtime.Runtime` (the ledger, the response cache, the engine every model
call goes through) and closes it at shutdown, follows the ledger into the metrics and -
with ``settings.monitor.enabled`` - runs the runtime's health monitor as a background task.
With ``warm_providers`` the providers of the default model and the tiers are built and
warmed before the first request, so no caller's first call pays for an SDK import or a
model load. Features add routers in :mod:`helios.server.routes`, each a
``router(state)`` factory, so no route reads module-level state.

Every route knows its caller through :mod:`helios.server.auth` (API keys, tenants, and
the rule for a server without keys, which needs the ``host`` the server is bound to); a
server bound to loopback answers only this machine's names (:mod:`helios.server.hosts`).
The vendored front-end files are served under ``/static/`` (:mod:`helios.server.assets`),
and the API docs (``/docs``, ``/redoc``) load from there, never from a CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from helios._version import __version__
from helios.errors import HeliosError, KeyStoreError, MissingDependency

try:
    from fastapi import FastAPI, Request, Response
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException
except ImportError:
    raise MissingDependency("fastapi", "server", "The HTTP server") from None

from helios.cache.manager import CacheManager
from helios.config.settings import Settings
from helios.ledger.store import LedgerStore
from helios.ledger.tail import LedgerTail
from helios.ops.metrics import HeliosMetrics
from helios.ops.monitor import HealthMonitor
from helios.runtime import Runtime
from helios.server import dashboard
from helios.server.assets import mount_static
from helios.server.auth import KeyGuard, is_loopback
from helios.server.cache_metrics import CacheCollector
from helios.server.gateway.http_errors import protocol_http_error
from helios.server.hosts import HostGuard, names_for
from helios.server.openapi import errors, move_components
from helios.server.routes import admin as admin_routes
from helios.server.routes import anthropic as anthropic_routes
from helios.server.routes import api_docs, health
from helios.server.routes import cache as cache_routes
from helios.server.routes import metrics as metrics_routes
from helios.server.routes import openai as openai_routes
from helios.server.routes import tasks as task_routes
from helios.server.state import ServerState

logger = logging.getLogger("helios.server")


def create_app(
    settings: Settings,
    *,
    store: LedgerStore | None = None,
    metrics: HeliosMetrics | None = None,
    metrics_poll_s: float = 5.0,
    cache: CacheManager | None = None,
    warm_providers: bool = False,
    host: str = "127.0.0.1",
    port: int | None = None,
    announce_exposure: bool = True,
    dashboard_poll_s: float = 2.0,
    task_worker: bool = True,
) -> FastAPI:
    """The Helios HTTP app. A ``store`` or ``cache`` passed in is used as is and left open
    at shutdown. ``host`` is the address the server is bound to: without API keys, only a
    loopback address serves (unauthenticated) calls unless
    ``settings.server.allow_unauthenticated``; on loopback, requests must name this machine
    in their Host header, with ``port`` (``None``: any port) or none. At start-up the app
    logs who can reach it (:func:`~helios.server.auth.exposure`), unless
    ``announce_exposure`` is false (``helios serve`` has said it already).

    The metrics follow the ledger (every ``metrics_poll_s``), so they count the tasks of
    every process that records into it, from the moment the server started; the dashboard's
    live stream reads it every ``dashboard_poll_s``. With ``tasks.enabled`` the app takes
    durable tasks (``/api/v1/tasks``) and, with ``task_worker``, runs them in-process too.
    """
    state = ServerState(
        settings=settings,
        metrics=metrics
        if metrics is not None
        else HeliosMetrics(abandoned_after_s=settings.ledger.abandoned_after_s),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            # An unreachable ledger shows on /health rather than stopping the app: the store
            # connects lazily and the runtime only warns when it cannot read it at start-up.
            runtime = await stack.enter_async_context(
                Runtime.open(settings, store=store, cache=cache, api_keys=True)
            )
            state.runtime, state.store = runtime, runtime.store
            state.cache, state.registry = runtime.cache, runtime.registry
            stack.callback(state.forget_runtime)  # a restarted lifespan builds a fresh one
            await _start_auth(state, runtime, host, announce_exposure)
            if state.store is not None:
                await _start_tail(state, stack, metrics_poll_s)
            if runtime.settings.tasks.enabled:
                await _start_tasks(state, stack, runtime, worker=task_worker)
            if runtime.settings.monitor.enabled and runtime.monitor is not None:
                _start_monitor(state, runtime.monitor, stack)
            if warm_providers:
                warmed = await runtime.warm()
                logger.info("providers ready: %s", ", ".join(warmed) or "none")
                _freeze_startup_objects(stack)
            yield

    app = FastAPI(
        title="Helios",
        version=__version__,
        description=(
            "LLM orchestration engine: an OpenAI- and Anthropic-compatible gateway over "
            "Helios's cache, router, budgets and ledger; metrics, health and the cache API."
        ),
        lifespan=lifespan,
        responses=errors(421) if is_loopback(host) else None,
        openapi_url=api_docs.OPENAPI_URL,
        docs_url=None,  # served from the vendored files instead (routes/api_docs.py)
        redoc_url=None,
    )
    app.state.helios = state
    _declare_gateway_bodies(app)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, protocol_http_error)
    if is_loopback(host):
        names = names_for(host, settings.server.allowed_hosts)
        app.add_middleware(HostGuard, names=names, port=port)
    state.metrics.registry.register(CacheCollector(lambda: state.cache))
    app.include_router(metrics_routes.router(state))
    app.include_router(health.router(state))
    app.include_router(cache_routes.router(state))
    app.include_router(admin_routes.router(state))
    app.include_router(openai_routes.router(state))
    app.include_router(anthropic_routes.router(state))
    app.include_router(task_routes.router(state))
    app.include_router(api_docs.router(title=app.title, openapi_url=api_docs.OPENAPI_URL))
    dashboard.install(app, state, poll_s=dashboard_poll_s)
    mount_static(app)
    return app


def _declare_gateway_bodies(app: FastAPI) -> None:
    """The schema FastAPI writes, with the gateway's bodies (declared by the routes, read by
    them) moved where OpenAPI tools look for them."""
    written = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = move_components(written())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _freeze_startup_objects(stack: contextlib.AsyncExitStack) -> None:
    """Hide what start-up built (it lives as long as the server) from the garbage collector.

    Otherwise each full collection walks those objects again: a 30-50 ms stall of every
    request in flight (measured under load); frozen, it walks only what requests left.
    """
    gc.collect()
    gc.freeze()
    stack.callback(gc.unfreeze)


async def _start_auth(state: ServerState, runtime: Runtime, host: str, announce: bool) -> None:
    """Check keys on every call; refuse to serve (``ConfigError``) on a non-loopback address
    while no key exists (unless allowed), and say who can reach the server."""
    allow_open = runtime.settings.server.allow_unauthenticated
    state.auth = KeyGuard(runtime.key_directory, host=host, allow_unauthenticated=allow_open)
    try:
        notice = await state.auth.start_up_notice()
    except KeyStoreError as exc:  # every call is refused (503) until the store answers
        logger.warning("API key store unavailable at start-up: %s", exc)
        return
    if notice is None or not announce:
        return
    if notice.startswith("warning: "):
        logger.warning(notice.removeprefix("warning: "))
    else:
        logger.info(notice)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 (``{"detail": [errors]}``) in ASCII JSON: its own handler writes UTF-8
    and fails with a 500 when the body held a lone surrogate (``"\\ud800"``) it echoes."""
    assert isinstance(exc, RequestValidationError)
    content = json.dumps({"detail": jsonable_encoder(exc.errors())})
    return Response(content, status_code=422, media_type="application/json")


async def _start_tail(
    state: ServerState, stack: contextlib.AsyncExitStack, interval_s: float
) -> None:
    assert state.store is not None
    tail = LedgerTail(state.store, state.metrics)
    try:
        await tail.start()  # now, so that no event recorded once the app is up is missed
    except HeliosError as exc:  # an unreachable ledger: the first poll that works starts it
        logger.warning("ledger tail: %s", exc)
    task = asyncio.create_task(tail.run(interval_s), name="helios-ledger-tail")
    stack.push_async_callback(_stop, task)


async def _start_tasks(
    state: ServerState, stack: contextlib.AsyncExitStack, runtime: Runtime, *, worker: bool
) -> None:
    from helios.tasks.host import TaskHost  # DBOS is imported only by a server that takes tasks
    from helios.tasks.service import TaskService

    state.task_host = await stack.enter_async_context(
        TaskHost.open(runtime, worker=worker, role="serve")
    )
    state.tasks = TaskService(runtime.sink)


def _start_monitor(
    state: ServerState, monitor: HealthMonitor, stack: contextlib.AsyncExitStack
) -> None:
    config = monitor.settings
    state.monitor = monitor
    if state.tasks is not None:  # once per interval for the whole fleet (helios.tasks.health)
        from helios.tasks.health import run_on_schedule

        state.monitor_task = asyncio.create_task(
            run_on_schedule(config.interval_s, state.metrics.observe_health), name="helios-monitor"
        )
    else:
        state.monitor_task = asyncio.create_task(
            monitor.run(config.interval_s, on_report=state.metrics.observe_health),
            name="helios-monitor",
        )
    stack.push_async_callback(_stop, state.monitor_task)
    logger.info("health monitor started: every %g s over %g h", config.interval_s, config.hours)


async def _stop(task: asyncio.Task[object]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
