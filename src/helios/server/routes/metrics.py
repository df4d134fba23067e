"""``GET /metrics``: the Prometheus exposition of the server's :class:`HeliosMetrics`.

The counters are the server's, across tenants (spend per model, cache savings): once keys
exist they need an admin key (Prometheus sends one with ``authorization: {credentials:
...}``), unless ``server.public_metrics`` serves them to anyone.

Besides the ledger's counters (:mod:`helios.ops.metrics`), a scrape reads what is only
known now: the budget windows (:mod:`helios.server.budget_metrics`), the ledger writer's
backlog and the cache manager's counters (:mod:`helios.server.cache_metrics`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from starlette.concurrency import run_in_threadpool

from helios.governance.governor import Governor
from helios.server.auth import require_operator
from helios.server.budget_metrics import BudgetCollector
from helios.server.openapi import OPERATOR_ERRORS
from helios.server.state import ServerState


def router(state: ServerState) -> APIRouter:
    public = state.settings.server.public_metrics
    routes = APIRouter(
        tags=["observability"],
        dependencies=[] if public else [Depends(require_operator)],
        responses={} if public else OPERATOR_ERRORS,
    )

    def governor() -> Governor | None:
        return state.runtime.engine.governor if state.runtime is not None else None

    budgets = BudgetCollector(governor)
    state.metrics.registry.register(budgets)

    @routes.get(
        "/metrics",
        response_class=Response,
        summary="Prometheus metrics",
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        await budgets.refresh()
        writer = state.runtime.writer if state.runtime is not None else None
        if writer is not None:
            state.metrics.set_ledger_lag(writer.lag_s, writer.pending)
        # Rendering takes the registry's locks, which must not stall the event loop under
        # a large label set: it runs in a worker thread.
        content = await run_in_threadpool(state.metrics.render)
        return Response(content=content, media_type=state.metrics.content_type)

    return routes
