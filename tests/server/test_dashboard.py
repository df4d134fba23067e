"""``/dashboard``: every page renders what the ledger says (expected figures computed here
from the seeded events), filters and pages, the cache page invalidates, the live stream
reports new events, and the admin key guards it all."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

from helios.analysis.comparison import compare
from helios.config.settings import Settings
from helios.ledger.events import (
    CacheLookup,
    Event,
    PersonaLLMRun,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.sqlite import SQLiteLedgerStore
from helios.server import create_app
from tests.server.cache_fixtures import build_manager, client_for, create_key
from tests.server.dashboard_fixtures import PERSONAS, close, seed, shown
from tests.server.gateway_fixtures import free_port

HOUR = 3600.0


def settings(tmp_path: Path, **values: Any) -> Settings:
    config: dict[str, Any] = {
        "ledger": {"enabled": True, "path": str(tmp_path / "ledger.sqlite3")},
        "cache": {"backend": "memory", "semantic": {"enabled": False}},
        "keys": {"path": str(tmp_path / "keys.sqlite3")},
    }
    return Settings.model_validate({**config, **values})


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[tuple[SQLiteLedgerStore, list[Event]]]:
    store = await SQLiteLedgerStore.open(tmp_path / "ledger.sqlite3")
    events = await seed(store)
    try:
        yield store, events
    finally:
        await store.aclose()


@asynccontextmanager
async def dashboard(tmp_path: Path, store: SQLiteLedgerStore) -> AsyncIterator[httpx2.AsyncClient]:
    app = create_app(settings(tmp_path), store=store)
    async with client_for(app) as client:
        yield client


def value(text_and_value: tuple[str, str | None]) -> float | None:
    raw = text_and_value[1]
    return None if raw in (None, "") else float(raw)


def in_window(events: list[Event], now: float, span: float = HOUR) -> list[Event]:
    return [e for e in events if now - span <= e.timestamp <= now]


# -- the overview -----------------------------------------------------------------------------
async def test_the_overview_shows_what_the_ledger_says(
    tmp_path: Path, seeded: tuple[SQLiteLedgerStore, list[Event]]
) -> None:
    store, events = seeded
    async with dashboard(tmp_path, store) as client:
        answer = await client.get("/dashboard")
    assert answer.status_code == 200, answer.text
    page = shown(answer.text)
    recent = in_window(events, time.time())
    started = [e for e in recent if isinstance(e, TaskStarted)]
    finished = [e for e in recent if isinstance(e, TaskFinished)]
    calls = [e for e in recent if isinstance(e, PersonaLLMRun)]
    lookups = [e for e in recent if isinstance(e, CacheLookup)]
    assert len(started) == 24 and 0 < len(finished) < len(started)  # the old tasks are out

    assert value(page.metrics["started"]) == len(started)
    assert close(value(page.metrics["tasks-per-minute"]), len(started) / 60.0)
    assert value(page.metrics["finished"]) == len(finished)
    succeeded = sum(e.success for e in finished)
    accepted = sum(e.accepted_pass is not None for e in finished)
    assert 0 < accepted < succeeded < len(finished)  # three different rates
    assert close(value(page.metrics["success-rate"]), succeeded / len(finished))
    assert close(value(page.metrics["acceptance-rate"]), accepted / len(finished))
    assert page.metrics["acceptance-rate"][0] == f"{100 * accepted / len(finished):.1f}%"
    priced = [c.cost_usd for c in calls if c.cost_usd is not None]
    assert close(value(page.metrics["spend"]), sum(priced))
    assert page.metrics["unpriced"][0] == str(len(calls) - len(priced))

    for persona in PERSONAS:
        row = page.rows[f"data-persona={persona}"]
        answered = [c for c in calls if c.persona == persona and c.cache_layer is None]
        durations = [c.duration_s for c in answered]
        ttfts = [c.ttft_s for c in answered if c.streaming]
        assert row["calls"][0] == str(sum(c.persona == persona for c in calls))
        assert close(value(row["p50"]), float(np.percentile(durations, 50)))
        assert close(value(row["p95"]), float(np.percentile(durations, 95)))
        if ttfts:
            assert close(value(row["ttft-p95"]), float(np.percentile(ttfts, 95)))
        else:
            assert row["ttft-p95"] == ("-", None) or value(row["ttft-p95"]) is None
        persona_lookups = [e for e in lookups if e.persona == persona]
        hits = sum(e.hit for e in persona_lookups)
        assert close(value(row["hit-rate"]), hits / len(persona_lookups))
    for layer in ("L2", "L3"):
        row = page.rows[f"data-layer={layer}"]
        layer_lookups = [e for e in lookups if e.layer == layer]
        hits = sum(e.hit for e in layer_lookups)
        saved = sum(c.cost_saved_usd or 0.0 for c in calls if c.cache_layer == layer)
        assert hits > 0 and saved > 0
        assert close(value(row["hit-rate"]), hits / len(layer_lookups))
        assert close(value(row["saved"]), saved)
    assert "no durable task queue yet" in answer.text


async def test_the_overview_lists_flag_changes_and_marks_rollbacks(
    tmp_path: Path, seeded: tuple[SQLiteLedgerStore, list[Event]]
) -> None:
    store, _ = seeded
    await store.set_flag_override("async_thesis", False, actor="monitor", reason="error rate 12%")
    await store.set_flag_override("max_passes", 3, actor="ops", reason="trying three")
    async with dashboard(tmp_path, store) as client:
        answer = await client.get("/dashboard")
    page = shown(answer.text)
    assert page.rows["data-flag=async_thesis"]["value"][0] == "False"
    assert page.rows["data-flag=max_passes"]["value"][0] == "3"
    changes = answer.text[answer.text.index('data-testid="flag-changes"') :]
    assert changes.index("trying three") < changes.index("error rate 12%")  # newest first
    assert re.search(r'class="rollback">.*?async_thesis', changes, re.S)


async def test_a_window_narrows_the_overview_and_a_bad_one_is_named(
    tmp_path: Path, seeded: tuple[SQLiteLedgerStore, list[Event]]
) -> None:
    store, events = seeded
    async with dashboard(tmp_path, store) as client:
        narrow = await client.get("/dashboard", params={"window": "15m"})
        fragment = await client.get(
            "/dashboard", params={"window": "24h"}, headers={"HX-Request": "true"}
        )
        bad = await client.get("/dashboard", params={"window": "2w"})
    expected = [e for e in in_window(events, time.time(), 900) if isinstance(e, TaskStarted)]
    assert value(shown(narrow.text).metrics["started"]) == len(expected) < 24
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert value(shown(fragment.text).metrics["started"]) == 29  # the old tasks too
    assert bad.status_code == 422
    assert "window: &#39;2w&#39; is not one of 15m, 1h, 6h, 24h" in bad.text


# -- tasks ------------------------------------------------------------------------------------
async def test_the_task_list_filters_searches_and_pages(
    tmp_path: Path, seeded: tuple[SQLiteLedgerStore, list[Event]]
) -> None:
    store, events = seeded
    starts = {e.task_id: e.timestamp for e in events if isinstance(e, TaskStarted)}
    ends = {e.task_id: e for e in events if isinstance(e, TaskFinished)}
    newest_first = sorted(starts, key=lambda task: starts[task], reverse=True)
    async with dashboard(tmp_path, store) as client:
        everything = shown((await client.get("/dashboard/tasks")).text)
        failed = shown((await client.get("/dashboard/tasks", params={"status": "failed"})).text)
        running = shown((await client.get("/dashboard/tasks?status=running&range=1h")).text)
        found = shown((await client.get("/dashboard/tasks", params={"q": "NUMBER 2"})).text)
        bad = await client.get("/dashboard/tasks", params={"status": "lost"})
    assert everything.row_order == [f"data-task={task}" for task in newest_first]
    assert value(everything.metrics["task-total"]) == len(starts)
    want_failed = [t for t in newest_first if t in ends and not ends[t].success]
    assert failed.row_order == [f"data-task={task}" for task in want_failed]
    assert {row["status"][0] for row in failed.rows.values()} <= {"failed", "failed, accepted"}
    recent = [t for t in newest_first if t not in ends and time.time() - starts[t] < HOUR]
    assert running.row_order == [f"data-task={task}" for task in recent]
    goals = {e.task_id: e.goal for e in events if isinstance(e, TaskStarted)}
    want_found = [t for t in newest_first if "number 2" in goals[t]]
    assert len(want_found) > 1 and found.row_order == [f"data-task={t}" for t in want_found]
    assert bad.status_code == 422 and "status: &#39;lost&#39;" in bad.text


async def test_the_task_list_pages_through_every_task(tmp_path: Path) -> None:
    store = await SQLiteLedgerStore.open(tmp_path / "ledger.sqlite3")
    now = time.time()
    await store.append(
        [TaskStarted(task_id=f"t{n:03d}", goal="g", timestamp=now - n) for n in range(120)]
    )
    seen: list[str] = []
    async with dashboard(tmp_path, store) as client:
        for page in (1, 2, 3, 4):
            answer = await client.get("/dashboard/tasks", params={"page": page})
            seen += shown(answer.text).row_order
            assert ('rel="next"' in answer.text) == (page < 3)
    await store.aclose()
    assert seen == [f"data-task=t{n:03d}" for n in range(120)]


async def test_a_task_page_draws_its_timeline_and_lists_its_events(
    tmp_path: Path, seeded: tuple[SQLiteLedgerStore, list[Event]]
) -> None:
    store, events = seeded
    mine = [e for e in events if e.task_id == "task-000"]
    async with dashboard(tmp_path, store) as client:
        answer = await client.get("/dashboard/tasks/task-000")
        missing = await client.get("/dashboard/tasks/no-such-task")
    assert answer.status_code == 200
    bars = re.findall(r'data-bar="([^"]+)"', answer.text)
    assert bars == [e.persona for e in mine if isinstance(e, PersonaLLMRun)]
    ttft_marks = answer.text.count('class="ttft"')
    assert ttft_marks == sum(
        isinstance(e, PersonaLLMRun) and e.streaming and e.cache_layer is None for e in mine
    )
    assert "L2 hit" in answer.text  # task 0's thesis came from the cache
    assert re.findall(r'id="event-(\d+)" data-type="([a-z_]+)"', answer.text) == [
        (str(i), e.type) for i, e in enumerate(mine)
    ]
    for target in re.findall(r'href="#event-(\d+)"', answer.text):
        assert f'id="event-{target}"' in answer.text
    cost = sum(e.cost_usd for e in mine if isinstance(e, PersonaLLMRun) and e.cost_usd is not None)
    assert close(value(shown(answer.text).metrics["task-cost"]), cost)
    assert "gate, pass 1: passed" in answer.text
    assert missing.status_code == 404 and "no task &#39;no-such-task&#39;" in missing.text


# -- A/B --------------------------------------------------------------------------------------
async def test_the_ab_page_shows_the_ledger_comparison(
    tmp_path: Path, seeded: tuple[SQLiteLedgerStore, list[Event]]
) -> None:
    store, events = seeded
    async with dashboard(tmp_path, store) as client:
        answer = await client.get("/dashboard/ab", params={"by": "flag:async_thesis"})
        unknown = await client.get("/dashboard/ab", params={"by": "flag:nope"})
    assert answer.status_code == 200, answer.text
    expected = compare(events, "flag:async_thesis")
    page = shown(answer.text)
    assert expected.baseline == "false" and 'data-testid="baseline">false' in answer.text
    for arm in expected.arms:
        row = page.rows[f"data-arm={arm.label}"]
        assert row["tasks"][0] == str(arm.tasks)
        assert close(value(row["total"]), arm.metrics["total"].mean)
    assert expected.differences
    for difference in expected.differences:
        row = page.rows[f"difference={difference.metric}/{difference.arm}"]
        assert close(value(row["improvement"]), difference.improvement_pct)
        assert close(value(row["variance"]), difference.variance_change_pct)
        assert close(value(row["p"]), difference.p_value)
        assert row["conclusion"][0] == difference.conclusion
    for verdict in expected.verdicts:
        assert verdict in answer.text
    assert unknown.status_code == 422 and "unknown --by &#39;flag:nope&#39;" in unknown.text


# -- cache ------------------------------------------------------------------------------------
async def test_the_cache_page_counts_entries_and_invalidates_by_task_type(tmp_path: Path) -> None:
    manager = build_manager(tmp_path, semantic=False)
    app = create_app(settings(tmp_path), cache=manager)
    async with client_for(app) as client:
        for n, task_type in enumerate(["review", "review", "summary"]):
            stored = await client.post(
                "/api/v1/helios/cache/store",
                json={"input_text": f"q{n}", "response_data": "a", "task_type": task_type},
            )
            assert stored.status_code == 200
        before = shown((await client.get("/dashboard/cache")).text)
        foreign = await client.post(
            "/dashboard/cache/invalidate",
            data={"task_type": "review"},
            headers={"Origin": "http://evil.example"},
        )
        cross_site = await client.post(
            "/dashboard/cache/invalidate",
            data={"task_type": "review"},
            headers={"Sec-Fetch-Site": "cross-site", "Origin": "http://127.0.0.1"},
        )
        nothing = await client.post("/dashboard/cache/invalidate", data={})
        removed = await client.post(
            "/dashboard/cache/invalidate",
            data={"task_type": "review", "layer": "L2"},
            headers={"HX-Request": "true", "Origin": "http://127.0.0.1"},
        )
        after = shown((await client.get("/dashboard/cache")).text)
    assert before.rows["data-layer=L2_REDIS_EXACT"]["entries"][0] == "3"
    assert before.rows["data-tenant=default"]["entries"][0] == "3"
    assert foreign.status_code == 403 and cross_site.status_code == 403
    assert nothing.status_code == 422 and "name a task type or a tenant" in nothing.text
    assert removed.status_code == 200 and "<html" not in removed.text
    assert "Removed 2 from L2_REDIS_EXACT" in removed.text
    assert after.rows["data-layer=L2_REDIS_EXACT"]["entries"][0] == "1"


# -- who may open it --------------------------------------------------------------------------
async def test_with_keys_the_dashboard_needs_an_admin_key_kept_in_a_strict_cookie(
    tmp_path: Path, seeded: tuple[SQLiteLedgerStore, list[Event]]
) -> None:
    store, _ = seeded
    keys = tmp_path / "keys.sqlite3"
    _, tenant = await create_key(keys, "acme")
    admin_key, admin = await create_key(keys, "ops", admin=True)
    app = create_app(settings(tmp_path), store=store)
    async with client_for(app) as client:
        anonymous = await client.get("/dashboard")
        not_admin = await client.get("/dashboard", headers={"Authorization": f"Bearer {tenant}"})
        wrong = await client.post("/dashboard/login", data={"key": tenant + "x"})
        login = await client.post("/dashboard/login", data={"key": admin})
        cookie = login.headers["set-cookie"]
        opened = await client.get("/dashboard")  # the client keeps the cookie
        client.cookies.clear()
        bearer = await client.get("/dashboard/tasks", headers={"x-api-key": admin})
        client.cookies.set("helios_dashboard_key", admin)
        logout = await client.post("/dashboard/logout")
        await app.state.helios.runtime.key_directory.store.revoke(admin_key.id)
        app.state.helios.runtime.key_directory.forget(admin_key.id)
        client.cookies.set("helios_dashboard_key", admin)
        revoked = await client.get("/dashboard")
    assert anonymous.status_code == 401 and 'name="key"' in anonymous.text
    assert not_admin.status_code == 403 and "needs an admin key" in not_admin.text
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert login.status_code == 303 and login.headers["location"] == "/dashboard"
    parts = [part.strip().lower() for part in cookie.split(";")]
    assert parts[0] == f"helios_dashboard_key={admin}".lower()
    assert {"httponly", "samesite=strict", "path=/dashboard"} <= set(parts)
    assert opened.status_code == 200 and 'data-metric="success-rate"' in opened.text
    assert bearer.status_code == 200
    assert logout.status_code == 303 and 'helios_dashboard_key=""' in logout.headers["set-cookie"]
    assert revoked.status_code == 401
    for answer in (anonymous, not_admin, wrong, opened, revoked):
        assert admin not in answer.text and tenant not in answer.text


async def test_without_keys_on_loopback_the_dashboard_is_open(
    tmp_path: Path, seeded: tuple[SQLiteLedgerStore, list[Event]]
) -> None:
    store, _ = seeded
    async with dashboard(tmp_path, store) as client:
        pages = [await client.get(path) for path in ("/dashboard", "/dashboard/tasks")]
        pages.append(await client.get("/dashboard/cache"))
        pages.append(await client.get("/dashboard/ab"))
    assert [page.status_code for page in pages] == [200, 200, 200, 200]


async def test_without_a_ledger_the_pages_say_so_and_the_cache_page_works(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path, ledger={"enabled": False}))
    async with client_for(app) as client:
        overview = await client.get("/dashboard")
        cache = await client.get("/dashboard/cache")
        stream = await client.get("/dashboard/stream")
    assert overview.status_code == 200 and 'data-testid="ledger-off"' in overview.text
    assert cache.status_code == 200 and "L2_REDIS_EXACT" in cache.text
    assert stream.status_code == 204  # an EventSource does not reconnect


# -- the live stream --------------------------------------------------------------------------
@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def next_update(lines: AsyncIterator[str]) -> dict[str, Any]:
    event = None
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "ledger":
            return dict(json.loads(line.removeprefix("data: ")))
    raise AssertionError("the stream ended")


async def test_the_stream_reports_new_events_of_the_ledger_and_of_one_task(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite3"
    writer = await SQLiteLedgerStore.open(path)
    await writer.append([TaskStarted(task_id="before", goal="g")])
    app = create_app(settings(tmp_path), dashboard_poll_s=0.05)
    try:
        with running(app) as url:
            async with (
                httpx2.AsyncClient(base_url=url, timeout=20) as client,
                client.stream("GET", "/dashboard/stream") as everything,
                client.stream("GET", "/dashboard/stream?task=live-1") as one_task,
            ):
                assert everything.headers["content-type"].startswith("text/event-stream")
                all_lines, task_lines = everything.aiter_lines(), one_task.aiter_lines()
                assert (await anext(all_lines)).startswith("retry: ")
                assert (await anext(task_lines)).startswith("retry: ")
                await writer.append([TaskStarted(task_id="other", goal="g")])
                await writer.append(
                    [
                        TaskStarted(task_id="live-1", goal="g"),
                        TaskFinished(task_id="live-1", success=True, duration_s=1.0),
                    ]
                )
                updates = []
                async with asyncio.timeout(15):
                    while sum(u["events"] for u in updates) < 3:
                        updates.append(await next_update(all_lines))
                    one = await next_update(task_lines)
    finally:
        await writer.aclose()
    assert sorted({task for u in updates for task in u["tasks"]}) == ["live-1", "other"]
    assert updates[-1]["sequence"] == 4  # "before" was there when the stream began
    assert one["tasks"] == ["live-1"] and one["types"] == {
        "task_started": 1,
        "task_finished": 1,
    }


async def test_behind_a_proxy_prefix_every_link_and_the_cookie_follow_the_root_path(
    tmp_path: Path, seeded: tuple[SQLiteLedgerStore, list[Event]]
) -> None:
    store, _ = seeded
    _, admin = await create_key(tmp_path / "keys.sqlite3", "ops", admin=True)
    app = create_app(settings(tmp_path), store=store)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app, root_path="/helios")
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            login = await client.post("/helios/dashboard/login", data={"key": admin})
            pages = [await client.get(f"/helios/dashboard{path}") for path in ("", "/tasks")]
            style = await client.get("/helios/dashboard/static/dashboard.css")
    assert login.status_code == 303 and login.headers["location"] == "/helios/dashboard"
    assert "path=/helios/dashboard" in login.headers["set-cookie"].lower()
    assert [page.status_code for page in pages] == [200, 200]  # the cookie was sent back
    for page in pages:
        links = re.findall(r'(?:href|src|action|hx-get)="(/[^"]*)"', page.text)
        assert links and all(link.startswith("/helios/") for link in links), links
        assert 'data-root="/helios"' in page.text
    assert style.status_code == 200
