"""The static files ``helios serve`` ships, under ``/static/``: front-end libraries vendored
from the npm registry (``static/vendor/``, pinned with hashes and licences in
``static/vendor/manifest.json``; ``scripts/vendor_assets.py`` refreshes and checks them).

They sit beside ``server/`` rather than under ``server/dashboard/static`` (where
DESIGN.md first placed them) because the API docs pages (Swagger UI, ReDoc) use them too,
not only the dashboard. Pages name a file by :func:`static_url`, so the mount point is
written once. The files
are public, like the OpenAPI pages that load them: a browser fetches a script without the
page's API key, and none of them is a secret.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static"

SWAGGER_UI_JS = "vendor/swagger-ui/swagger-ui-bundle.js"
SWAGGER_UI_CSS = "vendor/swagger-ui/swagger-ui.css"
SWAGGER_UI_FAVICON = "vendor/swagger-ui/favicon-32x32.png"
REDOC_JS = "vendor/redoc/redoc.standalone.js"
HTMX_JS = "vendor/htmx/htmx.min.js"
UPLOT_JS = "vendor/uplot/uPlot.iife.min.js"
UPLOT_CSS = "vendor/uplot/uPlot.min.css"


def static_url(path: str) -> str:
    """The URL path of a file under ``static/``: ``static_url(HTMX_JS)``."""
    if not (STATIC_DIR / path).is_file():
        raise FileNotFoundError(f"{STATIC_DIR / path}: no such static file")
    return f"{STATIC_PREFIX}/{path}"


def mount_static(app: FastAPI) -> None:
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="static")
