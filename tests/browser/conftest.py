"""Browser tests: pages of ``helios serve`` rendered in headless Chromium, driven by
Playwright, with no network but this machine.

- ``browser`` (this package, whose tests are synchronous): Debian's Chromium (``chromium``
  on the PATH, or ``$HELIOS_CHROMIUM``) launched by Playwright, which never downloads a
  browser. Without Chromium the tests skip, saying how to install it; with
  ``HELIOS_REQUIRE_SERVICES=1`` (CI) they fail instead.
- ``helios_server`` (module): the app and uvicorn server ``helios serve`` runs, in a
  thread, on 127.0.0.1 (see :mod:`tests.browser.helios_server`; ``serve_helios`` starts
  one with other settings, e.g. over a seeded ledger).
- ``page``: a fresh browser context and page in which every request to a host other than
  127.0.0.1 is aborted and recorded in ``traffic``, so a test proves the page works
  offline (``traffic.assert_offline()``). Override ``page_headers`` in a test module to
  send headers with every request (an API key). Each test's page is saved as a PNG under
  ``tests/artifacts/browser/`` (or ``$HELIOS_TEST_ARTIFACTS/browser/``), pass or fail.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    Request,
    Response,
    Route,
    sync_playwright,
)

from tests.browser.helios_server import RunningServer, browser_settings, serve_helios

ROOT = Path(__file__).parents[2]
LOCAL_HOST = "127.0.0.1"
VIEWPORT = {"width": 1280, "height": 900}
CSP_REFUSAL = re.compile(r"'([^']+)' (?:because it )?violates the following Content Security")
INSTALL_HINT = "apt-get install -y chromium (Debian's package), or set HELIOS_CHROMIUM"


def artifacts_root() -> Path:
    configured = os.environ.get("HELIOS_TEST_ARTIFACTS")
    return Path(configured) if configured else ROOT / "tests" / "artifacts"


def chromium_binary() -> str:
    """The browser to drive, or a skip (a failure in CI) that says what is missing."""
    configured = os.environ.get("HELIOS_CHROMIUM")
    if configured:
        if not Path(configured).is_file():
            unavailable(f"HELIOS_CHROMIUM={configured}: no such file")
        return configured
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        unavailable(f"Chromium not found: {INSTALL_HINT}")
    return found


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail where every test must run (CI)."""
    if os.environ.get("HELIOS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (HELIOS_REQUIRE_SERVICES=1: browser tests may not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Package-scoped rather than session-scoped: while Playwright's synchronous API is
    started, its event loop counts as running in the main thread, and pytest-asyncio could
    not run the async tests of the other packages."""
    binary = chromium_binary()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=binary,
            headless=True,
            # a container's /dev/shm is small; Chromium's renderer crashes when it fills up
            args=["--disable-dev-shm-usage"],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where browser tests leave files to look at (screenshots)."""
    path = artifacts_root() / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def helios_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``helios serve`` with an empty ledger, no API key, in a data directory of its own."""
    with serve_helios(browser_settings(tmp_path_factory.mktemp("helios-serve"))) as server:
        yield server


@dataclass
class Traffic:
    """What a page did on the network and in its scripts."""

    blocked: list[str] = field(default_factory=list)
    """Requests to another host than 127.0.0.1: aborted, as if offline."""
    failed: list[str] = field(default_factory=list)
    """Local requests that got no answer (``url: reason``)."""
    http_errors: list[str] = field(default_factory=list)
    """Local requests answered 4xx or 5xx (``status url``)."""
    page_errors: list[str] = field(default_factory=list)
    """Uncaught exceptions in the page's scripts."""
    console_errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """URLs the page's Content-Security-Policy kept the browser from asking for."""
    loaded: list[str] = field(default_factory=list)
    """Local URLs answered (any status), in order."""

    def assert_offline(self) -> None:
        """Nothing was asked of another host, and every local request was answered."""
        assert self.blocked == [], f"requests to other hosts: {self.blocked}"
        assert self.failed == [], f"local requests that failed: {self.failed}"
        assert self.http_errors == [], f"local requests refused: {self.http_errors}"
        assert self.page_errors == [], f"script errors: {self.page_errors}"


def is_local(url: str) -> bool:
    return urlsplit(url).hostname == LOCAL_HOST


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
def page_headers() -> dict[str, str]:
    """Headers sent with every request of ``page`` (override to send an API key)."""
    return {}


@pytest.fixture
def page(
    browser: Browser,
    traffic: Traffic,
    page_headers: dict[str, str],
    artifacts_dir: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, extra_http_headers=page_headers)
    opened = context.new_page()

    def route(route: Route) -> None:
        if is_local(route.request.url):
            route.continue_()
        else:
            traffic.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    def answered(response: Response) -> None:
        if is_local(response.url):
            traffic.loaded.append(response.url)
            if response.status >= 400:
                traffic.http_errors.append(f"{response.status} {response.url}")

    def failed(failed_request: Request) -> None:
        if is_local(failed_request.url):
            traffic.failed.append(f"{failed_request.url}: {failed_request.failure}")

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            traffic.console_errors.append(message.text)
            if refusal := CSP_REFUSAL.search(message.text):
                traffic.refused.append(refusal.group(1))

    context.route("**/*", route)
    opened.on("response", answered)
    opened.on("requestfailed", failed)
    opened.on("pageerror", lambda error: traffic.page_errors.append(str(error)))
    opened.on("console", console)
    try:
        yield opened
    finally:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.removeprefix("tests/"))
        # A page that crashed cannot be photographed: the test's own failure says why.
        with contextlib.suppress(Error):
            opened.screenshot(path=str(artifacts_dir / f"{name}.png"), full_page=True)
        context.close()
