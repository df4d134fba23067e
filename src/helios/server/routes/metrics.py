"""``GET /metrics``: the Prometheus exposition of the server's :class:`HeliosMetrics`."""

from __future__ import annotations

from fastapi import APIRouter, Response

from helios.server.state import ServerState


def router(state: ServerState) -> APIRouter:
    routes = APIRouter(tags=["observability"])

    @routes.get("/metrics", response_class=Response, summary="Prometheus metrics")
    def metrics() -> Response:
        # Sync on purpose: FastAPI runs it in a thread, and rendering takes the registry's
        # locks, which must not stall the event loop under a large label set.
        return Response(content=state.metrics.render(), media_type=state.metrics.content_type)

    return routes
