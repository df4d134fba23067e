"""``/docs`` and ``/redoc`` in headless Chromium with no network but this machine: Swagger UI
shows every operation of the schema, ReDoc renders the API, and neither page asks
another host for anything."""

from __future__ import annotations

from typing import Any

import httpx2
from playwright.sync_api import Page, expect

from tests.browser.conftest import Traffic
from tests.browser.helios_server import RunningServer

RENDER_TIMEOUT_MS = 30_000
"""Generous: a busy machine parses the 1.5 MB bundles slowly; this only proves no hang."""


def schema_of(server: RunningServer) -> dict[str, Any]:
    answer = httpx2.get(f"{server.url}/openapi.json")
    answer.raise_for_status()
    schema: dict[str, Any] = answer.json()
    return schema


def operations(schema: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch", "head", "options")
    }


def test_swagger_ui_shows_every_operation_offline(
    helios_server: RunningServer, page: Page, traffic: Traffic
) -> None:
    expected = operations(schema_of(helios_server))
    page.goto(f"{helios_server.url}/docs")
    chat = page.locator(".opblock-summary-path[data-path='/v1/chat/completions']")
    expect(chat).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(page.locator(".info .title")).to_contain_text("Helios")
    blocks = page.locator(".opblock-summary")
    shown = {
        (
            block.locator(".opblock-summary-method").inner_text().strip(),
            block.locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for block in blocks.all()
    }
    assert shown == expected
    traffic.assert_offline()
    assert traffic.refused == []
    assert f"{helios_server.url}/static/vendor/swagger-ui/swagger-ui-bundle.js" in traffic.loaded


def test_swagger_ui_tries_a_call(
    helios_server: RunningServer, page: Page, traffic: Traffic
) -> None:
    page.goto(f"{helios_server.url}/docs")
    summary = page.locator(".opblock-summary", has=page.locator("[data-path='/health']"))
    summary.first.click(timeout=RENDER_TIMEOUT_MS)
    operation = page.locator(".opblock.is-open")
    expect(operation.locator(".responses-wrapper")).to_contain_text("503")  # declared
    operation.locator(".try-out__btn").click()
    operation.locator(".execute").click()
    answer = operation.locator(".live-responses-table tbody .response-col_status")
    expect(answer).to_have_text("200")
    expect(operation.locator(".live-responses-table")).to_contain_text('"status": "ok"')
    traffic.assert_offline()
    assert traffic.refused == []
    assert f"{helios_server.url}/health" in traffic.loaded


def test_redoc_lists_every_operation_and_opens_one_offline(
    helios_server: RunningServer, page: Page, traffic: Traffic
) -> None:
    schema = schema_of(helios_server)
    summary = schema["paths"]["/v1/chat/completions"]["post"]["summary"]
    page.goto(f"{helios_server.url}/redoc")
    expect(page.locator("h1").first).to_contain_text("Helios", timeout=RENDER_TIMEOUT_MS)
    for method, path in sorted(operations(schema)):
        operation = page.get_by_role("button", name=f"{method.lower()} {path}", exact=True)
        expect(operation).to_be_visible()
    page.get_by_role("button", name="post /v1/chat/completions", exact=True).click()
    expect(page.get_by_role("heading", name=summary).first).to_be_visible()
    traffic.assert_offline()
    # ReDoc always shows Redocly's logo from Redocly's CDN: the page's policy refuses it
    assert set(traffic.refused) == {"https://cdn.redoc.ly/redoc/logo-mini-full.svg"}
    assert f"{helios_server.url}/static/vendor/redoc/redoc.standalone.js" in traffic.loaded
