"""``GET /health``: is the ledger reachable, is every cache layer, and what did the health
monitor last see.

Anyone may ask (a load balancer probes without a key), but only an operator
(:attr:`~helios.server.auth.Caller.operator`: an admin key, or a call from this machine to
a server without keys) reads more than the status: the details name file paths, store
addresses and their errors.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from helios.cache.reports import API_LAYER_NAMES
from helios.errors import HeliosError
from helios.server.auth import Observer
from helios.server.state import ServerState

LEDGER_TIMEOUT_S = 2.0


class LedgerHealth(BaseModel):
    enabled: bool
    backend: str | None = None
    reachable: bool | None = None
    error: str | None = None


class MonitorHealth(BaseModel):
    enabled: bool
    running: bool
    report: dict[str, Any] | None = None
    """The latest :class:`~helios.ops.monitor.HealthReport` (``None`` before the first)."""


class CacheLayerHealth(BaseModel):
    status: Literal["ok", "degraded", "disabled"]
    backend: str | None
    detail: str
    breaker: Literal["closed", "open", "half-open"] | None = None


class CacheHealthReport(BaseModel):
    enabled: bool
    status: Literal["ok", "degraded", "disabled"]
    layers: dict[str, CacheLayerHealth] = {}


class WorkerHealth(BaseModel):
    executor_id: str
    host: str
    pid: int
    queue: str
    beat_s_ago: float
    alive: bool
    taken_over_by: str | None = None


class TasksHealth(BaseModel):
    enabled: bool
    executor_id: str | None = None
    worker: bool = False
    queue: str | None = None
    reachable: bool | None = None
    error: str | None = None
    workers: list[WorkerHealth] = []
    """Every process of the fleet that shares this task database, by its last heartbeat."""


class HealthStatus(BaseModel):
    """What a caller that is not an operator learns."""

    status: Literal["ok", "degraded", "unavailable"]


class Health(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    """``unavailable`` (HTTP 503): the ledger cannot be read; ``degraded``: a monitor rule
    fires, the monitor stopped, or a cache layer's store is down (the cache fails open, so
    requests are still served)."""
    ledger: LedgerHealth
    monitor: MonitorHealth
    cache: CacheHealthReport
    tasks: TasksHealth


def router(state: ServerState) -> APIRouter:
    routes = APIRouter(tags=["observability"])

    @routes.get(
        "/health",
        response_model=Health | HealthStatus,
        responses={
            503: {"model": Health | HealthStatus, "description": "the ledger is unreachable"}
        },
        summary="Ledger reachability and the health monitor's latest report",
        description="Anyone gets the status; the details (stores, paths, errors, the monitor's"
        " report) need an admin key, or a call to a server on loopback without keys.",
    )
    async def health(response: Response, caller: Observer) -> Health | HealthStatus:
        ledger = await _ledger(state)
        report = state.monitor.latest if state.monitor is not None else None
        monitor = MonitorHealth(
            enabled=state.monitor is not None,
            running=state.monitor_running,
            report=report.to_dict() if report is not None else None,
        )
        cache = await _cache(state)
        verdict: Literal["ok", "degraded", "unavailable"] = "ok"
        if ledger.reachable is False:
            verdict = "unavailable"
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        else:
            monitor_unwell = (report is not None and report.firing) or (
                monitor.enabled and not monitor.running
            )
            if monitor_unwell or cache.status == "degraded":
                verdict = "degraded"
        if caller is None or not caller.operator:
            return HealthStatus(status=verdict)
        tasks = await _tasks(state)
        if tasks.reachable is False and verdict == "ok":
            verdict = "degraded"
        return Health(status=verdict, ledger=ledger, monitor=monitor, cache=cache, tasks=tasks)

    return routes


async def _ledger(state: ServerState) -> LedgerHealth:
    store = state.store
    if store is None:
        return LedgerHealth(enabled=False)
    try:
        # Reading the overrides is one small query on every backend (a count may scan).
        await asyncio.wait_for(store.flag_overrides(), LEDGER_TIMEOUT_S)
    except TimeoutError:
        error = f"no answer within {LEDGER_TIMEOUT_S:g} s"
    except (HeliosError, OSError) as exc:
        error = str(exc) or type(exc).__name__
    else:
        return LedgerHealth(enabled=True, backend=store.name, reachable=True)
    return LedgerHealth(enabled=True, backend=store.name, reachable=False, error=error)


async def _cache(state: ServerState) -> CacheHealthReport:
    if state.cache is None:
        return CacheHealthReport(enabled=False, status="disabled")
    health = await state.cache.health()
    layers = {
        API_LAYER_NAMES[layer]: CacheLayerHealth(
            status=layer_health.status,
            backend=layer_health.backend,
            detail=layer_health.detail,
            breaker=layer_health.breaker,
        )
        for layer, layer_health in health.layers.items()
    }
    return CacheHealthReport(enabled=True, status=health.status, layers=layers)


async def _tasks(state: ServerState) -> TasksHealth:
    host = state.task_host
    if host is None:
        return TasksHealth(enabled=False)
    found = TasksHealth(
        enabled=True, executor_id=host.executor_id, worker=host.worker, queue=host.queue
    )
    try:
        rows = await asyncio.wait_for(host.fleet.workers(), LEDGER_TIMEOUT_S)
    except (TimeoutError, HeliosError, OSError, SQLAlchemyError) as exc:
        return found.model_copy(update={"reachable": False, "error": str(exc) or "timed out"})
    now = time.time()
    workers = [
        WorkerHealth(
            executor_id=row["executor_id"],
            host=row["host"],
            pid=row["pid"],
            queue=row["queue"],
            beat_s_ago=round(now - row["beat_at"], 3),
            alive=row["stopped_at"] is None and now - row["beat_at"] < host.fleet.timeout_s,
            taken_over_by=row["taken_over_by"],
        )
        for row in rows
    ]
    return found.model_copy(update={"reachable": True, "workers": workers})
