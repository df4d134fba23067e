"""The dashboard in headless Chromium, against a real ``helios serve`` over a seeded ledger:
each page shows the ledger's numbers, filters swap the task list in place (htmx), a task's
page follows it live (SSE) as its events are recorded, the login form keeps the admin key
out of the page's reach, and nothing is asked of another host."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from helios.analysis.comparison import compare
from helios.ledger.events import Event, PersonaLLMRun, TaskFinished, TaskStarted
from helios.ledger.sqlite import SQLiteLedgerStore
from tests.browser.conftest import Traffic
from tests.browser.helios_server import RunningServer, browser_settings, serve_helios
from tests.server.cache_fixtures import create_key
from tests.server.dashboard_fixtures import seed_events

UPDATE_TIMEOUT_MS = 20_000
"""Generous: the page polls every 0.2 s here; this only proves it does not hang."""


def append(path: Path, events: list[Event]) -> None:
    """Record ``events`` as another process would (a thread of its own: Playwright's sync
    API holds this one's event loop)."""

    async def write() -> None:
        store = await SQLiteLedgerStore.open(path)
        try:
            await store.append(events)
        finally:
            await store.aclose()

    thread = threading.Thread(target=asyncio.run, args=(write(),))
    thread.start()
    thread.join(30)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, list[Event]]]:
    data = tmp_path_factory.mktemp("dashboard")
    events = seed_events(time.time())
    append(data / "ledger.sqlite3", events)
    with serve_helios(browser_settings(data), dashboard_poll_s=0.2) as server:
        yield server, events


def number(page: Page, metric: str) -> float:
    value = page.locator(f'[data-metric="{metric}"]').first.get_attribute("data-value")
    assert value, metric
    return float(value)


def test_the_overview_shows_the_ledgers_figures_and_goes_live(
    seeded: tuple[RunningServer, list[Event]], page: Page, traffic: Traffic
) -> None:
    server, events = seeded
    page.goto(f"{server.url}/dashboard")
    expect(page.locator("#live")).to_have_text("live", timeout=UPDATE_TIMEOUT_MS)
    expect(page.locator("#per-minute-chart canvas")).to_have_count(1)  # uPlot drew it
    since = time.time() - 3600
    recent = [e for e in events if e.timestamp >= since]
    started = [e for e in recent if isinstance(e, TaskStarted)]
    finished = [e for e in recent if isinstance(e, TaskFinished)]
    assert number(page, "started") == len(started)
    assert number(page, "success-rate") == pytest.approx(
        sum(e.success for e in finished) / len(finished)
    )
    assert number(page, "acceptance-rate") == pytest.approx(
        sum(e.accepted_pass is not None for e in finished) / len(finished)
    )
    traffic.assert_offline()


def test_a_filter_swaps_the_task_list_in_place(
    seeded: tuple[RunningServer, list[Event]], page: Page, traffic: Traffic
) -> None:
    server, events = seeded
    failed = [e.task_id for e in events if isinstance(e, TaskFinished) and not e.success]
    page.goto(f"{server.url}/dashboard/tasks")
    rows = page.locator("#tasks tr[data-task]")
    expect(rows).to_have_count(sum(isinstance(e, TaskStarted) for e in events))
    page.evaluate("document.body.dataset.marker = 'same page'")
    page.select_option("select[name=status]", "failed")
    expect(rows).to_have_count(len(failed), timeout=UPDATE_TIMEOUT_MS)
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.task)")) == sorted(failed)
    assert page.evaluate("document.body.dataset.marker") == "same page"  # swapped, not loaded
    assert "status=failed" in page.url  # the filter is in the address, for a reload or a link
    traffic.assert_offline()


def test_a_task_page_follows_the_task_live(
    seeded: tuple[RunningServer, list[Event]], page: Page, traffic: Traffic
) -> None:
    server, _ = seeded
    ledger = server.settings.ledger.path
    assert ledger is not None
    append(Path(ledger), [TaskStarted(task_id="live-in-browser", goal="watch me")])
    page.goto(f"{server.url}/dashboard/tasks/live-in-browser")
    expect(page.locator("#live")).to_have_text("live", timeout=UPDATE_TIMEOUT_MS)
    expect(page.locator("[data-bar]")).to_have_count(0)
    now = time.time()
    call = PersonaLLMRun(
        task_id="live-in-browser",
        persona="thesis",
        stage="thesis",
        provider="sim",
        model="sim-large",
        streaming=True,
        ttft_s=0.2,
        duration_s=0.8,
        perceived_improvement=0.75,
        input_tokens=10,
        output_tokens=5,
        cost_usd=0.004,
        timestamp=now,
    )
    append(Path(ledger), [call])
    expect(page.locator('[data-bar="thesis"]')).to_have_count(1, timeout=UPDATE_TIMEOUT_MS)
    expect(page.locator(".ttft")).to_have_count(1)
    append(Path(ledger), [TaskFinished(task_id="live-in-browser", success=True, duration_s=1.0)])
    expect(page.locator('[data-metric="task-status"]')).to_contain_text(
        "succeeded", timeout=UPDATE_TIMEOUT_MS
    )
    expect(page.locator("tr[data-type]")).to_have_count(3)
    traffic.assert_offline()


def test_the_ab_page_shows_the_comparison(
    seeded: tuple[RunningServer, list[Event]], page: Page, traffic: Traffic
) -> None:
    server, events = seeded
    expected = compare(events, "flag:async_thesis")
    page.goto(f"{server.url}/dashboard/ab?by=flag:async_thesis")
    total = next(d for d in expected.differences if d.metric == "total")
    row = page.locator(f'tr[data-metric="total"][data-arm="{total.arm}"]')
    expect(row.locator('[data-col="conclusion"]')).to_have_text(total.conclusion)
    shown = row.locator('[data-col="improvement"]').get_attribute("data-value")
    assert shown is not None and float(shown) == pytest.approx(total.improvement_pct)
    page.goto(f"{server.url}/dashboard/cache")
    expect(page.locator('tr[data-layer="L2_REDIS_EXACT"]')).to_have_count(1)
    traffic.assert_offline()


def test_the_login_form_keeps_the_admin_key_in_an_httponly_cookie(
    tmp_path: Path, page: Page
) -> None:
    data = tmp_path / "keyed"
    data.mkdir()
    created: list[str] = []

    def make_key() -> None:
        created.append(asyncio.run(create_key(data / "keys.sqlite3", "ops", admin=True))[1])

    maker = threading.Thread(target=make_key)  # Playwright's sync API holds this thread's loop
    maker.start()
    maker.join(30)
    (admin,) = created
    with serve_helios(browser_settings(data)) as server:
        answer = page.goto(f"{server.url}/dashboard")
        assert answer is not None and answer.status == 401
        page.fill("input[name=key]", admin)
        page.click("form.login button[type=submit]")
        expect(page.locator('[data-metric="success-rate"]')).to_have_count(1)
        assert page.url == f"{server.url}/dashboard"
        assert admin not in page.evaluate("document.cookie")  # HttpOnly: no script reads it
        cookie = next(c for c in page.context.cookies() if c["name"] == "helios_dashboard_key")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/dashboard"
