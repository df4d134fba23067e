"""``GET /metrics``: the Prometheus exposition of the server's :class:`HeliosMetrics`.

The counters are the server's, across tenants (spend per model, cache savings): once keys
exist they need an admin key (Prometheus sends one with ``authorization: {credentials:
...}``), unless ``server.public_metrics`` serves them to anyone.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from helios.server.auth import require_operator
from helios.server.openapi import OPERATOR_ERRORS
from helios.server.state import ServerState


def router(state: ServerState) -> APIRouter:
    public = state.settings.server.public_metrics
    routes = APIRouter(
        tags=["observability"],
        dependencies=[] if public else [Depends(require_operator)],
        responses={} if public else OPERATOR_ERRORS,
    )

    @routes.get(
        "/metrics",
        response_class=Response,
        summary="Prometheus metrics",
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def metrics() -> Response:
        # Sync on purpose: FastAPI runs it in a thread, and rendering takes the registry's
        # locks, which must not stall the event loop under a large label set.
        return Response(content=state.metrics.render(), media_type=state.metrics.content_type)

    return routes
