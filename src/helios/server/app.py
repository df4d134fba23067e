"""The FastAPI application factory.

``create_app(settings)`` builds the app once at start-up: the ledger store (given, or
opened from ``settings.ledger`` in the lifespan and closed at shutdown), the metrics
registry, the response cache (given, or built from ``settings.cache`` in the lifespan and
closed at shutdown) and - with ``settings.monitor.enabled`` - the health monitor as a
background task that is cancelled on shutdown. Features add routers in
:mod:`helios.server.routes`, each a ``router(state)`` factory, so no route reads
module-level state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from helios._version import __version__
from helios.errors import MissingDependency

try:
    from fastapi import FastAPI, Request, Response
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
except ImportError:
    raise MissingDependency("fastapi", "server", "The HTTP server") from None

from helios.cache.factory import cache_manager
from helios.cache.manager import CacheManager
from helios.catalog import Catalog
from helios.config.settings import Settings
from helios.governance.router import ROUTER_NAME
from helios.ledger.factory import open_store
from helios.ledger.store import LedgerStore
from helios.ledger.tail import LedgerTail
from helios.ops.alerts import Alerter
from helios.ops.metrics import HeliosMetrics
from helios.ops.monitor import HealthMonitor
from helios.providers.registry import ProviderRegistry
from helios.server.cache_metrics import CacheCollector
from helios.server.routes import cache as cache_routes
from helios.server.routes import health
from helios.server.routes import metrics as metrics_routes
from helios.server.state import ServerState

logger = logging.getLogger("helios.server")


def create_app(
    settings: Settings,
    *,
    store: LedgerStore | None = None,
    metrics: HeliosMetrics | None = None,
    metrics_poll_s: float = 5.0,
    cache: CacheManager | None = None,
) -> FastAPI:
    """The Helios HTTP app. A ``store`` or ``cache`` passed in is used as is and left open
    at shutdown.

    The metrics follow the ledger (every ``metrics_poll_s``), so they count the tasks of
    every process that records into it, from the moment the server started.
    """
    state = ServerState(
        settings=settings,
        metrics=metrics if metrics is not None else HeliosMetrics(),
        store=store,
        cache=cache,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if state.store is None and settings.ledger.enabled:
                # Lazy: an unreachable ledger shows on /health rather than stopping the app.
                state.store = open_store(settings.ledger)
                stack.push_async_callback(state.store.aclose)
            if state.store is not None:
                _start_tail(state, stack, metrics_poll_s)
            _open_cache(state, stack)
            if settings.monitor.enabled and state.store is not None:
                await _start_monitor(state, stack)
            yield

    app = FastAPI(
        title="Helios",
        version=__version__,
        description="LLM orchestration engine: metrics, health and the response cache API.",
        lifespan=lifespan,
    )
    app.state.helios = state
    app.add_exception_handler(RequestValidationError, _invalid_request)
    state.metrics.registry.register(CacheCollector(lambda: state.cache))
    app.include_router(metrics_routes.router(state))
    app.include_router(health.router(state))
    app.include_router(cache_routes.router(state))
    return app


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 (``{"detail": [errors]}``) in ASCII JSON: its own handler writes UTF-8
    and fails with a 500 when the body held a lone surrogate (``"\\ud800"``) it echoes."""
    assert isinstance(exc, RequestValidationError)
    content = json.dumps({"detail": jsonable_encoder(exc.errors())})
    return Response(content, status_code=422, media_type="application/json")


def _open_cache(state: ServerState, stack: contextlib.AsyncExitStack) -> None:
    """The registry only parses model specs (no provider is built, no SDK imported)."""
    given = state.cache
    catalog = given.catalog if given is not None else Catalog.load(state.settings.catalog_files)
    registry = ProviderRegistry(state.settings, catalog)
    # "auto" keys entries as the engine does (router:auto), without building the router
    registry.parse_only(ROUTER_NAME)
    registry.alias("auto", f"{ROUTER_NAME}:auto")
    state.registry = registry
    if given is not None:
        return
    built = cache_manager(state.settings, catalog, kind_of=registry.kind_of)
    if built is None:
        return
    state.cache = built

    async def close() -> None:
        state.cache = None  # a restarted lifespan builds a fresh one
        await built.aclose()

    stack.push_async_callback(close)


def _start_tail(state: ServerState, stack: contextlib.AsyncExitStack, interval_s: float) -> None:
    assert state.store is not None
    tail = LedgerTail(state.store, state.metrics)
    task = asyncio.create_task(tail.run(interval_s), name="helios-ledger-tail")
    stack.push_async_callback(_stop, task)


async def _start_monitor(state: ServerState, stack: contextlib.AsyncExitStack) -> None:
    assert state.store is not None
    config = state.settings.monitor
    alerter = Alerter(config.webhook_url if config.alert else None)
    stack.push_async_callback(alerter.aclose)
    state.monitor = HealthMonitor(state.store, config, alerter=alerter)
    state.monitor_task = asyncio.create_task(
        state.monitor.run(config.interval_s, on_report=state.metrics.observe_health),
        name="helios-monitor",
    )
    stack.push_async_callback(_stop, state.monitor_task)
    logger.info("health monitor started: every %g s over %g h", config.interval_s, config.hours)


async def _stop(task: asyncio.Task[object]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
