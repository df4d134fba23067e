"""Who may open the dashboard: the gateway's admin key, carried by a cookie.

A browser sends no ``Authorization`` header when it follows a link, so the dashboard takes
the admin key once, through its login form (``POST /dashboard/login``), and keeps it in a
cookie the page's scripts cannot read (``HttpOnly``), that no other site's page or form
makes the browser send (``SameSite=Strict``), sent only to ``/dashboard`` (under the
app's ``root_path`` when it has one), and over HTTPS
only when the dashboard is reached through HTTPS (``Secure``). The key is checked on every
request as any API key is (:class:`~helios.server.auth.KeyGuard`), so a key revoked or
expired logs its browser out at once. Scripts and tools may send the key as the API does
(``Authorization: Bearer``, ``x-api-key``) instead.

Without keys, on loopback, the dashboard is open like the rest of the API; once keys exist,
a request without one is answered 401 with the login form, and a key that is not an
admin key 403. Forms that change something (cache invalidation, logging out) are refused
(403) when the browser says they come from another site (``Origin``, ``Sec-Fetch-Site``),
which keeps another site's page from posting them to a keyless loopback server.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, HTTPException, Request, status

from helios.server.auth import Caller, KeyGuard

COOKIE = "helios_dashboard_key"
COOKIE_MAX_AGE_S = 8 * 3600
"""A browser left logged in forgets the key after a working day."""
MAX_FORM_BYTES = 8192


class DashboardRefusal(HTTPException):
    """A refusal the dashboard answers with a page (the login form for a 401)."""


async def dashboard_caller(request: Request) -> Caller:
    """The FastAPI dependency of every dashboard route: an admin caller, or anyone while the
    server serves without keys; else a :class:`DashboardRefusal`."""
    return await admit(request, presented_key(request))


async def admit(request: Request, presented: str | None) -> Caller:
    guard: KeyGuard | None = request.app.state.helios.auth
    if guard is None:
        raise DashboardRefusal(status.HTTP_503_SERVICE_UNAVAILABLE, "the server is starting")
    try:
        caller = await guard.caller(presented)
    except HTTPException as exc:
        raise DashboardRefusal(exc.status_code, str(exc.detail), exc.headers) from None
    if caller.key_id is not None and not caller.admin:
        raise DashboardRefusal(
            status.HTTP_403_FORBIDDEN, "the dashboard needs an admin key; this one is not"
        )
    return caller


def presented_key(request: Request) -> str | None:
    """The key a request carries: its headers first (as the API reads them), then the
    dashboard's cookie."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, credentials = authorization.partition(" ")
        return credentials.strip() if scheme.lower() == "bearer" else authorization
    return request.headers.get("x-api-key") or request.cookies.get(COOKIE) or None


def check_same_site(request: Request) -> None:
    """Refuse a form that a page of another site made the browser send."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:  # the browser's own verdict; it holds behind a proxy too
        if fetch_site not in ("same-origin", "none"):
            raise DashboardRefusal(status.HTTP_403_FORBIDDEN, "a form from another site: refused")
        return
    origin = request.headers.get("origin")  # older browsers: compare with our own address
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise DashboardRefusal(status.HTTP_403_FORBIDDEN, f"a form from {origin}: refused")


async def form_fields(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body's fields (first value of each); any
    other body has none."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise DashboardRefusal(
                status.HTTP_413_CONTENT_TOO_LARGE, f"a form above {MAX_FORM_BYTES} bytes"
            )
    try:
        parsed = parse_qs(body.decode("utf-8"), strict_parsing=False)
    except UnicodeDecodeError:
        raise DashboardRefusal(status.HTTP_400_BAD_REQUEST, "a form that is not UTF-8") from None
    return {name: values[0] for name, values in parsed.items() if values}


DashboardCaller = Annotated[Caller, Depends(dashboard_caller)]
