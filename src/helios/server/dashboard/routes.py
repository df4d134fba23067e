"""``/dashboard``: the pages (overview, tasks, one task, A/B, cache), login and logout.

Each page is rendered on the server; a request htmx (or the page's own script) sends with
``HX-Request: true`` gets only the part of the page that changes, so filters, paging and
live refreshes swap that part in place. Who may open it: :mod:`.access`.
"""

from __future__ import annotations

import contextlib
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from helios.cache.keys import prefix_for
from helios.cache.reports import API_LAYER_NAMES, LAYERS, Layer
from helios.cache.supplied import selection_problem
from helios.errors import CacheBackendError, HeliosError, InputError, KeyStoreError
from helios.ledger.events import Event
from helios.ledger.store import EventQuery, LedgerStore
from helios.ledger.task_list import TASK_STATUSES, TaskListQuery, TaskStatus
from helios.server.auth import DEFAULT_TENANT
from helios.server.dashboard.access import (
    COOKIE,
    COOKIE_MAX_AGE_S,
    DashboardCaller,
    DashboardRefusal,
    admit,
    check_same_site,
    form_fields,
    presented_key,
)
from helios.server.dashboard.overview import (
    DEFAULT_WINDOW,
    WINDOWS,
    overview,
    recent_flag_changes,
)
from helios.server.dashboard.stream import stream_response
from helios.server.dashboard.timeline import timeline
from helios.server.dashboard.views import root_of, templates
from helios.server.state import ServerState

PREFIX = "/dashboard"
PAGE_SIZE = 50
RANGES: dict[str, float | None] = {"all": None, "15m": 900, "1h": 3600, "24h": 86400, "7d": 604800}
AB_TASKS = (200, 1000, 5000, 20000)
DEFAULT_SPLIT = "flag:async_thesis"
"""How many of the most recent tasks the A/B page may compare."""


def router(state: ServerState, *, poll_s: float = 2.0) -> APIRouter:
    """The dashboard's routes; its live stream reads the ledger every ``poll_s`` seconds."""
    routes = APIRouter(prefix=PREFIX, include_in_schema=False)
    pages = templates()

    def render(request: Request, name: str, context: dict[str, Any], code: int = 200) -> Response:
        fragment = request.headers.get("hx-request") == "true"
        chosen = f"_{name}" if fragment else name
        response = pages.TemplateResponse(request, chosen, context, status_code=code)
        response.headers["Vary"] = "HX-Request"
        response.headers["Cache-Control"] = "no-store"
        return response

    def store() -> LedgerStore:
        assert state.store is not None  # each page checks ledger_off() first
        return state.store

    def ledger_off(request: Request, page: str) -> Response | None:
        """The page to show instead while the ledger is disabled (not an error: the cache
        page still works)."""
        if state.store is not None:
            return None
        return render(request, "ledger_off.html", {"page": page})

    @routes.get("", response_class=HTMLResponse)
    async def overview_page(
        request: Request, caller: DashboardCaller, window: str = DEFAULT_WINDOW
    ) -> Response:
        if window not in WINDOWS:
            raise _bad("window", window, WINDOWS)
        if (off := ledger_off(request, "overview")) is not None:
            return off
        ledger = store()
        now = time.time()
        try:
            facts = await ledger.window_facts(now - WINDOWS[window], now)
            figures = overview(facts, window=window, now=now)
            changes = recent_flag_changes(await ledger.query(EventQuery(types=["flag_changed"])))
        except HeliosError as exc:
            raise DashboardRefusal(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        context = {
            "page": "overview",
            "o": figures,
            "windows": list(WINDOWS),
            "flag_changes": changes,
            "budgets": await _budgets(state),
            "flags": await _flags(state),
        }
        return render(request, "overview.html", context)

    @routes.get("/tasks", response_class=HTMLResponse)
    async def tasks_page(
        request: Request,
        caller: DashboardCaller,
        status_: Annotated[str, Query(alias="status")] = "",
        range_: Annotated[str, Query(alias="range")] = "all",
        q: str = "",
        page: int = 1,
    ) -> Response:
        if status_ and status_ not in TASK_STATUSES:
            raise _bad("status", status_, TASK_STATUSES)
        if range_ not in RANGES:
            raise _bad("range", range_, RANGES)
        if page < 1:
            raise DashboardRefusal(422, f"page: {page} is not a page number (1 or more)")
        if len(q) > 200:
            raise DashboardRefusal(422, "q: a search text above 200 characters")
        if (off := ledger_off(request, "tasks")) is not None:
            return off
        span = RANGES[range_]
        now = time.time()
        chosen: TaskStatus | None = status_ or None
        query = TaskListQuery(
            status=chosen,
            since=None if span is None else now - span,
            text=q.strip() or None,
            offset=(page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )
        try:
            found = await store().list_tasks(query)
        except HeliosError as exc:
            raise DashboardRefusal(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        pages_total = max(1, -(-found.total // PAGE_SIZE))
        context = {
            "page": "tasks",
            "rows": found.rows,
            "total": found.total,
            "page_number": page,
            "pages": pages_total,
            "status": status_,
            "range": range_,
            "q": q,
            "statuses": TASK_STATUSES,
            "ranges": list(RANGES),
            "now": now,
            "abandoned_after_s": state.settings.ledger.abandoned_after_s,
        }
        return render(request, "tasks.html", context)

    @routes.get("/tasks/{task_id}", response_class=HTMLResponse)
    async def task_page(request: Request, task_id: str, caller: DashboardCaller) -> Response:
        if len(task_id) > 200:
            raise DashboardRefusal(422, "task_id: above 200 characters")
        if (off := ledger_off(request, "tasks")) is not None:
            return off
        try:
            events = await store().query(EventQuery(task_ids=[task_id]))
        except HeliosError as exc:
            raise DashboardRefusal(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        if not events:
            raise DashboardRefusal(status.HTTP_404_NOT_FOUND, f"no task '{task_id}' in the ledger")
        context = {"page": "tasks", "t": timeline(task_id, events), "events": events}
        return render(request, "task.html", context)

    @routes.get("/ab", response_class=HTMLResponse)
    async def ab_page(
        request: Request,
        caller: DashboardCaller,
        by: str = "",
        baseline: str = "",
        last: int = 1000,
    ) -> Response:
        if len(by) > 100 or len(baseline) > 100:
            raise DashboardRefusal(422, "by, baseline: at most 100 characters")
        if last not in AB_TASKS:
            raise _bad("last", str(last), [str(n) for n in AB_TASKS])
        if (off := ledger_off(request, "ab")) is not None:
            return off
        try:
            from helios.analysis.comparison import compare, valid_choices
            from helios.analysis.tasks import group_tasks
        except ImportError:
            raise DashboardRefusal(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the A/B page needs numpy and scipy: pip install 'helios[analysis]'",
            ) from None
        try:
            events: list[Event] = await store().query(EventQuery(last_tasks=last))
        except HeliosError as exc:
            raise DashboardRefusal(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        choices = valid_choices(group_tasks(events))
        if not by:  # the reference design's experiment when the tasks recorded it
            by = DEFAULT_SPLIT if DEFAULT_SPLIT in choices else choices[0]
        comparison, problem = None, None
        try:
            comparison = compare(events, by, baseline or None)
        except InputError as exc:
            problem = str(exc)
        context = {
            "page": "ab",
            "by": by,
            "baseline": baseline,
            "last": last,
            "lasts": AB_TASKS,
            "choices": choices,
            "comparison": comparison,
            "problem": problem,
        }
        return render(request, "ab.html", context, 200 if problem is None else 422)

    @routes.get("/cache", response_class=HTMLResponse)
    async def cache_page(request: Request, caller: DashboardCaller) -> Response:
        return render(request, "cache.html", await _cache_context(state, None))

    @routes.post("/cache/invalidate", response_class=HTMLResponse)
    async def invalidate(request: Request, caller: DashboardCaller) -> Response:
        check_same_site(request)
        if not (caller.admin or caller.operator):
            raise DashboardRefusal(status.HTTP_403_FORBIDDEN, "invalidation needs an admin key")
        fields = await form_fields(request)
        task_type = fields.get("task_type", "").strip() or None
        tenant = fields.get("tenant", "").strip() or None
        layer_name = fields.get("layer", "").strip()
        layer = _layer(layer_name)
        if task_type is None and tenant is None:
            raise DashboardRefusal(
                422, "name a task type or a tenant (the dashboard does not purge everything)"
            )
        problem = selection_problem(layer, key=None, tenant=tenant, task_type=task_type)
        if problem is not None:
            raise DashboardRefusal(422, f"{problem[0]}: {problem[1]}")
        manager = state.cache
        if manager is None:
            raise DashboardRefusal(503, "the response cache is disabled (cache.enabled is false)")
        try:
            removed = await manager.invalidate(layer=layer, tenant=tenant, task_type=task_type)
        except CacheBackendError as exc:
            raise DashboardRefusal(503, str(exc)) from None
        result = {API_LAYER_NAMES[name]: count for name, count in removed.items()}
        return render(request, "cache.html", await _cache_context(state, result))

    @routes.get("/stream")
    async def stream(request: Request, caller: DashboardCaller, task: str = "") -> Response:
        if state.store is None:  # 204 tells a browser's EventSource not to reconnect
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        try:
            return await stream_response(request, store(), task=task or None, poll_s=poll_s)
        except HeliosError as exc:
            raise DashboardRefusal(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None

    @routes.post("/login")
    async def login(request: Request) -> Response:
        check_same_site(request)
        fields = await form_fields(request)
        presented = fields.get("key") or None
        if presented is None:
            presented = presented_key(request)
        await admit(request, presented)
        home = root_of(request) + PREFIX
        answer = RedirectResponse(home, status_code=status.HTTP_303_SEE_OTHER)
        if fields.get("key"):
            answer.set_cookie(
                COOKIE,
                fields["key"],
                max_age=COOKIE_MAX_AGE_S,
                path=home,
                secure=request.url.scheme == "https",
                httponly=True,
                samesite="strict",
            )
        return answer

    @routes.post("/logout")
    async def logout(request: Request, caller: DashboardCaller) -> Response:
        check_same_site(request)
        home = root_of(request) + PREFIX
        answer = RedirectResponse(home, status_code=status.HTTP_303_SEE_OTHER)
        answer.delete_cookie(COOKIE, path=home, httponly=True, samesite="strict")
        return answer

    return routes


def _bad(field: str, value: str, choices: Any) -> DashboardRefusal:
    return DashboardRefusal(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        f"{field}: '{value}' is not one of {', '.join(choices)}",
    )


def _layer(name: str) -> Layer | None:
    if not name:
        return None
    for layer in LAYERS:
        if name in (layer, API_LAYER_NAMES[layer]):
            return layer
    raise _bad("layer", name, LAYERS)


async def _budgets(state: ServerState) -> list[dict[str, Any]] | None:
    """Every budget window's use; ``None`` when no budget is configured."""
    runtime = state.runtime
    governor = None if runtime is None else runtime.governor
    if governor is None:
        return None
    try:
        windows = await governor.status()
    except HeliosError as exc:
        return [{"error": str(exc)}]
    return [
        {
            "account": window.account,
            "window": window.window,
            "kind": window.kind,
            "used": window.used,
            "reserved": window.reserved,
            "limit": window.limit,
            "remaining": window.remaining,
            "share": window.used / window.limit if window.limit else None,
            "resets_at": window.resets_at,
        }
        for window in windows
    ]


async def _flags(state: ServerState) -> list[tuple[str, Any, bool]]:
    """``(flag, value in force, overridden)`` for every flag."""
    runtime = state.runtime
    if runtime is None or runtime.flags is None:
        return []
    with contextlib.suppress(HeliosError):  # the registry keeps the last overrides it read
        await runtime.flags.current()
    overrides = runtime.flags.overrides
    return [(flag, value, flag in overrides) for flag, value in runtime.flags.effective().items()]


async def _cache_context(state: ServerState, removed: dict[str, int] | None) -> dict[str, Any]:
    manager = state.cache
    context: dict[str, Any] = {"page": "cache", "removed": removed, "enabled": manager is not None}
    if manager is None:
        return context
    snapshot = manager.snapshot()
    entries = await manager.entries()
    context["layers"] = [
        (API_LAYER_NAMES[layer], entries[layer], snapshot["layers"][layer]) for layer in LAYERS
    ]
    context["personas"] = snapshot["personas"]
    context["totals"] = snapshot
    context["tenants"] = await _tenant_entries(state)
    return context


async def _tenant_entries(state: ServerState) -> list[tuple[str, int | None]]:
    """L2 entries per tenant (every tenant a key names, and the keyless ``default``)."""
    manager, runtime = state.cache, state.runtime
    if manager is None or manager.exact is None or runtime is None:
        return []
    tenants = {DEFAULT_TENANT}
    with contextlib.suppress(KeyStoreError):  # the keyless tenant's count still helps
        tenants |= {key.tenant for key in await runtime.key_directory.store.list_keys()}
    backend = manager.exact.backend
    counts: list[tuple[str, int | None]] = []
    for tenant in sorted(tenants):
        try:
            counts.append((tenant, await backend.count(prefix_for(tenant))))
        except CacheBackendError:
            counts.append((tenant, None))
    return counts
