"""The ``page`` fixture itself: a request to another host never leaves the machine and is
recorded, so a page that needs the network fails ``traffic.assert_offline()``."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import Traffic
from tests.browser.helios_server import RunningServer

FETCH = "url => fetch(url).then(answer => answer.status, () => 'failed')"


def test_requests_to_other_hosts_are_aborted_and_recorded(
    helios_server: RunningServer, page: Page, traffic: Traffic
) -> None:
    page.goto(f"{helios_server.url}/health")
    assert page.evaluate(FETCH, f"{helios_server.url}/health") == 200
    assert page.evaluate(FETCH, "https://cdn.example/lib.js") == "failed"
    assert page.evaluate(FETCH, "http://localhost:9/") == "failed"
    assert traffic.blocked == ["https://cdn.example/lib.js", "http://localhost:9/"]
    assert traffic.loaded == [f"{helios_server.url}/health"] * 2
    with pytest.raises(AssertionError, match="requests to other hosts"):
        traffic.assert_offline()


def test_local_refusals_and_script_errors_are_recorded(
    helios_server: RunningServer, page: Page, traffic: Traffic
) -> None:
    page.goto(f"{helios_server.url}/static/vendor/nothing.js")
    with page.expect_event("pageerror"):
        page.evaluate("() => setTimeout(() => { throw new Error('boom') }, 0)")
    assert traffic.http_errors == [f"404 {helios_server.url}/static/vendor/nothing.js"]
    assert traffic.page_errors == ["boom"]
