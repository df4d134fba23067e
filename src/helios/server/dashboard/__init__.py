"""The web dashboard ``helios serve`` answers at ``/dashboard``: server-rendered pages over
the ledger, the cache and the governor, with htmx for partial refreshes, uPlot for charts
and Server-Sent Events for live updates; no Node build step.

- :mod:`.routes`: the pages (overview, tasks, one task, A/B, cache), login and logout;
- :mod:`.access`: the admin key in an HttpOnly cookie, the same-site check of its forms;
- :mod:`.overview`, :mod:`.timeline`: the figures, from events;
- :mod:`.stream`: the live stream (SSE) following the ledger by sequence;
- :mod:`.views`: how numbers and times are written; ``templates/``, ``static/``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.staticfiles import StaticFiles

from helios.server.dashboard.access import DashboardRefusal
from helios.server.dashboard.routes import PREFIX, router
from helios.server.dashboard.views import STATIC, templates
from helios.server.state import ServerState

__all__ = ["PREFIX", "install"]


def install(app: FastAPI, state: ServerState, *, poll_s: float = 2.0) -> None:
    """Add the dashboard's routes, its static files and its refusal pages to ``app``."""
    pages = templates()

    async def refusal(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DashboardRefusal)
        context = {"page": "", "code": exc.status_code, "detail": exc.detail}
        fragment = request.headers.get("hx-request") == "true"
        name = "_refusal.html" if fragment else "refusal.html"
        response = pages.TemplateResponse(
            request, name, context, status_code=exc.status_code, headers=exc.headers
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    app.add_exception_handler(DashboardRefusal, refusal)
    app.include_router(router(state, poll_s=poll_s))
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="dashboard-static")
