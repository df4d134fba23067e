"""The Host-header allow-list of a server bound to a loopback address.

A web page can make a browser call ``http://127.0.0.1:8002`` through a name of its own that
resolves there (DNS rebinding): the request is local, but its ``Host`` header still names the
page's site. A loopback server therefore answers only the names of this machine -
``localhost``, ``127.0.0.1``, ``[::1]``, the address it is bound to, and
``server.allowed_hosts`` - with no port or its own port; anything else is a 421 (a missing
Host header, a 400) before any route, key check or body read. A server bound to another
address is meant to be reached under names it cannot know, so it checks none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")


class HostGuard:
    """ASGI middleware: refuse requests whose Host header is not an allowed name."""

    def __init__(self, app: ASGIApp, *, names: Iterable[str], port: int | None) -> None:
        self.app = app
        self.names = frozenset(name.lower() for name in names)
        self.port = port
        self.listed = ", ".join(sorted(self.names))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if host is not None and self.allows(host):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # closing before accepting denies the handshake
            await send({"type": "websocket.close", "code": 1008})
            return
        if host is None:
            await _refuse(send, 400, "missing Host header")
        else:
            shown = host.encode("ascii", "backslashreplace").decode()[:200]
            message = (
                f"Host '{shown}' is not served here: a server on a loopback address answers"
                f" only {self.listed} (add names to server.allowed_hosts)"
            )
            await _refuse(send, 421, message)

    def allows(self, host: str) -> bool:
        name, port = split_host(host.lower())
        if name not in self.names:
            return False
        return port is None or self.port is None or port == self.port


def names_for(bound: str, extra: Iterable[str]) -> list[str]:
    """The names a server bound to ``bound`` answers: this machine's, its own, and ``extra``."""
    own = f"[{bound.strip('[]')}]" if ":" in bound else bound
    return [*LOCAL_NAMES, own.lower(), *extra]


def split_host(host: str) -> tuple[str, int | None]:
    """``"localhost:8002"`` -> ``("localhost", 8002)``; ``"[::1]"`` -> ``("[::1]", None)``;
    a port that is not a number keeps the whole value as the name (never allowed)."""
    name, colon, port = host.rpartition(":")
    if not colon or not name or (name.startswith("[") and not name.endswith("]")):
        return host, None  # no port (or an unbracketed IPv6 address, never allowed)
    if not port.isdigit() or not port.isascii() or len(port) > 5:
        return host, None
    return name, int(port)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
