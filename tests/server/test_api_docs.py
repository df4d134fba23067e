"""``/docs`` and ``/redoc`` load Swagger UI and ReDoc from ``/static/``, never from another
host, and need no key even once keys exist (a browser fetches scripts without one).
``tests/browser/test_api_docs.py`` renders both in headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import pytest

from helios.config.settings import Settings
from helios.server import create_app
from helios.server.assets import STATIC_DIR
from tests.server.cache_fixtures import client_for, create_key


def settings(keys: Path) -> Settings:
    return Settings.model_validate(
        {
            "ledger": {"enabled": False},
            "cache": {"backend": "memory", "semantic": {"enabled": False}},
            "keys": {"path": str(keys)},
        }
    )


SOURCES = re.compile(r"""(?:src|href)="([^"]+)"|url: '([^']+)'|from "([^"]+)"|init\("([^"]+)\"""")


def loaded_urls(html: str) -> list[str]:
    """What a page makes the browser fetch: scripts, stylesheets, icons and the schema."""
    return [next(group for group in match.groups() if group) for match in SOURCES.finditer(html)]


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (
            "/docs",
            [
                "/static/vendor/swagger-ui/swagger-ui.css",
                "/static/vendor/swagger-ui/favicon-32x32.png",
                "/static/vendor/swagger-ui/swagger-ui-bundle.js",
                "/openapi.json",
            ],
        ),
        (
            "/redoc",
            [
                "/static/vendor/swagger-ui/favicon-32x32.png",
                "/static/vendor/redoc/redoc.standalone.js",
                "/openapi.json",
            ],
        ),
    ],
)
async def test_the_docs_pages_load_only_local_files_without_a_key(
    tmp_path: Path, page: str, expected: list[str]
) -> None:
    keys = tmp_path / "keys.sqlite3"
    await create_key(keys, "acme")  # keys exist: every other route needs one
    app = create_app(settings(keys))
    async with client_for(app) as client:
        html = await client.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        urls = loaded_urls(html.text)
        assert urls == expected
        assert "googleapis" not in html.text and "cdn." not in html.text
        policy = html.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "connect-src 'self'" in policy
        assert "http" not in policy  # no other host allowed
        for url in urls:
            answer = await client.get(url)
            assert answer.status_code == 200, url
            if url.startswith("/static/"):
                assert answer.content == (STATIC_DIR / url.removeprefix("/static/")).read_bytes()
        refused = await client.get("/api/v1/helios/cache/health")
    assert refused.status_code == 401


async def test_the_pages_send_nothing_to_validators_or_telemetry(tmp_path: Path) -> None:
    async with client_for(create_app(settings(tmp_path / "keys.sqlite3"))) as client:
        docs = (await client.get("/docs")).text
        redoc = (await client.get("/redoc")).text
    assert '"validatorUrl": null' in docs
    assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'" in docs
    assert "{ disableTelemetry: true }" in redoc


async def test_the_pages_follow_the_root_path_a_proxy_serves_them_under(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path / "keys.sqlite3"))
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app, root_path="/helios")
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            docs = await client.get("/helios/docs")
            redoc = await client.get("/helios/redoc")
            script = await client.get("/helios/static/vendor/redoc/redoc.standalone.js")
    assert all(url.startswith("/helios/") for url in loaded_urls(docs.text))
    assert all(url.startswith("/helios/") for url in loaded_urls(redoc.text))
    assert script.status_code == 200


async def test_static_files_are_public_files_only(tmp_path: Path) -> None:
    keys = tmp_path / "keys.sqlite3"
    await create_key(keys, "acme")
    async with client_for(create_app(settings(keys))) as client:
        htmx = await client.get("/static/vendor/htmx/htmx.min.js")
        css = await client.get("/static/vendor/uplot/uPlot.min.css")
        listing = await client.get("/static/vendor/")
        missing = await client.get("/static/vendor/htmx/nothing.js")
        escape = await client.get("/static/%2e%2e/app.py")
        foreign = await client.get(
            "/static/vendor/htmx/htmx.min.js", headers={"Host": "evil.example"}
        )
    assert htmx.status_code == 200 and "javascript" in htmx.headers["content-type"]
    assert htmx.content == (STATIC_DIR / "vendor/htmx/htmx.min.js").read_bytes()
    assert htmx.headers["etag"]  # browsers revalidate rather than download again
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert (listing.status_code, missing.status_code, escape.status_code) == (404, 404, 404)
    assert foreign.status_code == 421  # the Host check of a loopback server covers them too
