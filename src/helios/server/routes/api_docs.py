"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) from the vendored files under ``/static/``.

FastAPI's own pages load both from a CDN (and ReDoc its fonts from Google), so offline or
behind a firewall they are blank; these load nothing from another host. ReDoc 3 is an ES
module that reports usage to Redocly unless told not to, which FastAPI's ReDoc page can
neither load nor say, so ``/redoc`` is a page of its own; it also shows Redocly's logo
from Redocly's CDN, whatever its options say, so both pages carry a Content-Security-Policy
that lets them load only from this server (the browser refuses the logo; ReDoc then shows
none). Like ``/openapi.json`` they need no key: the schema is no secret, and Swagger UI
offers to send one for the calls it tries.
"""

from __future__ import annotations

import html
import json

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from helios.server.assets import (
    REDOC_JS,
    SWAGGER_UI_CSS,
    SWAGGER_UI_FAVICON,
    SWAGGER_UI_JS,
    static_url,
)

OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
REDOC_URL = "/redoc"

SWAGGER_UI_PARAMETERS = {"validatorUrl": None}
"""Swagger UI would send the schema to validator.swagger.io for its badge."""

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",  # the pages' own inline start-up scripts
        "style-src 'self' 'unsafe-inline'",  # ReDoc's styled-components write <style> tags
        "img-src 'self' data:",  # Swagger UI's icons are data: URLs
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)
"""Nothing from another host: no CDN, no telemetry, no attribution image."""

REDOC_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="{favicon}">
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<noscript>ReDoc needs JavaScript to show the API documentation.</noscript>
<div id="redoc"></div>
<script type="module">
import {{ init }} from {script};
init({openapi}, {{ disableTelemetry: true }}, document.getElementById("redoc"));
</script>
</body>
</html>
"""


def router(*, title: str, openapi_url: str) -> APIRouter:
    routes = APIRouter(include_in_schema=False)
    swagger_js, swagger_css = static_url(SWAGGER_UI_JS), static_url(SWAGGER_UI_CSS)
    favicon, redoc_js = static_url(SWAGGER_UI_FAVICON), static_url(REDOC_JS)

    @routes.get(DOCS_URL)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=root + swagger_js,
            swagger_css_url=root + swagger_css,
            swagger_favicon_url=root + favicon,
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page

    @routes.get(OAUTH2_REDIRECT_URL)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @routes.get(REDOC_URL)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return HTMLResponse(
            REDOC_PAGE.format(
                title=html.escape(f"{title} - ReDoc"),
                favicon=html.escape(root + favicon),
                script=_script_string(root + redoc_js),
                openapi=_script_string(root + openapi_url),
            ),
            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
        )

    return routes


def _root_path(request: Request) -> str:
    """The prefix a proxy serves the app under (uvicorn's ``--root-path``), as FastAPI's own
    pages honour it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _script_string(text: str) -> str:
    """``text`` as a JavaScript string literal inside a ``<script>`` element."""
    return json.dumps(text).replace("<", "\\u003c")
