"""The HTTP server: /metrics, /health, and the monitor in the app's lifespan."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from helios.config.settings import Settings
from helios.errors import LedgerError
from helios.ledger.events import FlagValue, TaskFinished, TaskStarted
from helios.ledger.memory import MemoryLedgerStore
from helios.ops.metrics import HeliosMetrics
from helios.server import create_app


class DownStore(MemoryLedgerStore):
    async def flag_overrides(self) -> dict[str, FlagValue]:
        raise LedgerError("ledger.sqlite3: unable to open database file")


def settings(**values: object) -> Settings:
    return Settings.model_validate(values)


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx2.AsyncClient]:
    """The app with its lifespan running, reached through the ASGI transport."""
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client


async def failing_tasks(store: MemoryLedgerStore, count: int) -> None:
    now = time.time()
    for n in range(count):
        await store.append(
            [
                TaskStarted(task_id=f"t{n}", goal="g", timestamp=now - 10),
                TaskFinished(task_id=f"t{n}", success=False, duration_s=1, timestamp=now - 5),
            ]
        )


async def test_metrics_exposes_the_registry() -> None:
    metrics = HeliosMetrics()
    metrics.emit(TaskStarted(task_id="t", goal="g"))
    app = create_app(settings(), store=MemoryLedgerStore(), metrics=metrics)
    async with client_for(app) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["helios_tasks_started"].samples[0].value == 1


async def test_health_ok_without_a_monitor() -> None:
    app = create_app(settings(monitor={"enabled": False}), store=MemoryLedgerStore())
    async with client_for(app) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    cache = body.pop("cache")
    tasks = body.pop("tasks")
    assert tasks["enabled"] is True and tasks["reachable"] is True and tasks["worker"] is True
    this = [worker for worker in tasks["workers"] if worker["executor_id"] == tasks["executor_id"]]
    assert [worker["alive"] for worker in this] == [True]
    assert body == {
        "status": "ok",
        "ledger": {"enabled": True, "backend": "memory", "reachable": True, "error": None},
        "monitor": {"enabled": False, "running": False, "report": None},
    }
    assert cache["enabled"] is True and cache["status"] == "ok"
    assert {layer["status"] for layer in cache["layers"].values()} == {"ok"}


async def test_health_reports_an_unreachable_ledger() -> None:
    app = create_app(settings(), store=DownStore())
    async with client_for(app) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["ledger"]["reachable"] is False
    assert "unable to open database file" in body["ledger"]["error"]


async def test_health_without_a_ledger() -> None:
    app = create_app(settings(ledger={"enabled": False}))
    async with client_for(app) as client:
        body = (await client.get("/health")).json()
    assert body["status"] == "ok"
    assert body["ledger"] == {"enabled": False, "backend": None, "reachable": None, "error": None}


async def test_the_monitor_runs_in_the_lifespan() -> None:
    store = MemoryLedgerStore()
    await failing_tasks(store, 25)
    metrics = HeliosMetrics()
    config = settings(monitor={"enabled": True, "interval_s": 0.01, "alert": False})
    app = create_app(config, store=store, metrics=metrics)
    async with client_for(app) as client:
        state = app.state.helios
        # the report reaches the metrics once the check's workflow has returned it
        exposition = ""
        while 'helios_health_value{metric="error_rate"}' not in exposition:
            await asyncio.sleep(0.01)
            exposition = (await client.get("/metrics")).text
        body = (await client.get("/health")).json()
        task = state.monitor_task
    assert body["status"] == "degraded"
    assert body["monitor"]["running"] is True
    assert body["monitor"]["report"]["tasks"] == 25
    assert body["monitor"]["report"]["healthy"] is False
    assert 'helios_health_value{metric="error_rate"} 1.0' in exposition
    # Rolled back once, however many checks ran; and the monitor stopped with the app.
    assert await store.flag_overrides() == {"async_thesis": False}
    assert len([e for e in await store.query() if e.type == "flag_changed"]) == 1
    assert task.done()


async def test_the_app_opens_and_closes_its_own_store(tmp_path: Path) -> None:
    config = settings(ledger={"path": str(tmp_path / "ledger.sqlite3")})
    app = create_app(config)
    async with client_for(app) as client:
        body = (await client.get("/health")).json()
    assert body["ledger"]["backend"] == "sqlite"
    assert body["ledger"]["reachable"] is True
    assert (tmp_path / "ledger.sqlite3").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served() -> Iterator[str]:
    """The app served by a real uvicorn on 127.0.0.1, lifespan included."""
    store = MemoryLedgerStore()
    config = settings(monitor={"enabled": True, "interval_s": 0.05, "alert": False})
    app = create_app(config, store=store)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(10)
    assert not thread.is_alive()
    assert app.state.helios.monitor_task.done()


def test_served_by_uvicorn(served: str) -> None:
    with httpx2.Client(base_url=served) as client:
        deadline = time.monotonic() + 10
        while client.get("/health").json()["monitor"]["report"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        health = client.get("/health")
        metrics = client.get("/metrics")
        docs = client.get("/openapi.json")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert "helios_health_samples" in metrics.text
    assert {"/metrics", "/health"} <= set(docs.json()["paths"])


async def test_metrics_count_tasks_recorded_by_other_processes() -> None:
    store = MemoryLedgerStore()
    await failing_tasks(store, 2)  # before the server started: not counted
    app = create_app(settings(), store=store, metrics_poll_s=0.01)
    async with client_for(app) as client:
        later = time.time() + 1
        await store.append(
            [
                TaskStarted(task_id="new", goal="g", timestamp=later),
                TaskFinished(task_id="new", success=True, duration_s=2, timestamp=later),
            ]
        )
        for _ in range(200):
            text = (await client.get("/metrics")).text
            if 'helios_tasks_ended_total{status="succeeded"} 1.0' in text:
                break
            await asyncio.sleep(0.01)
        assert 'helios_tasks_ended_total{status="succeeded"} 1.0' in text
        assert 'helios_tasks_ended_total{status="failed"} 0.0' in text


async def test_metrics_keep_counting_after_an_event_stamped_an_hour_ahead() -> None:
    store = MemoryLedgerStore()
    app = create_app(settings(), store=store, metrics_poll_s=0.01)
    async with client_for(app) as client:
        now = time.time()
        ahead = TaskStarted(task_id="fast-clock", goal="g", timestamp=now + 3600)
        await store.append([ahead])  # a writer whose clock runs an hour fast
        await metrics_show(client, "helios_tasks_started_total 1.0")  # the tail has read it
        for n in range(3):  # then the other writers' tasks, stamped correctly
            await store.append(
                [
                    TaskStarted(task_id=f"t{n}", goal="g", timestamp=now + n),
                    TaskFinished(task_id=f"t{n}", success=True, duration_s=1, timestamp=now + n),
                ]
            )
        text = await metrics_show(client, 'helios_tasks_ended_total{status="succeeded"} 3.0')
        assert "helios_tasks_started_total 4.0" in text
        assert "helios_tasks_running 1.0" in text  # the fast clock's task, not yet ended


async def metrics_show(client: httpx2.AsyncClient, expected: str) -> str:
    """The ``/metrics`` text once it shows ``expected`` (fails after about 3 s)."""
    for _ in range(300):
        text = (await client.get("/metrics")).text
        if expected in text:
            return text
        await asyncio.sleep(0.01)
    raise AssertionError(f"/metrics never showed {expected!r}:\n{text}")
