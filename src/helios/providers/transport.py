"""What the official SDKs' aiohttp transport hides: a refused connection.

The OpenAI and Anthropic SDKs send through their aiohttp transport (their ``aiohttp``
extra). It maps every ``aiohttp.ClientConnectionError`` (refused, reset, closed early) to
httpx's ``ConnectTimeout``, so the SDK then says "Request timed out" for a port nobody
listens on. The adapters ask :func:`refused_connection` before calling a timeout a timeout.
"""

from __future__ import annotations

from helios.errors import MissingDependency

try:
    import aiohttp
except ImportError as exc:
    raise MissingDependency("aiohttp", "openai", "The SDKs' aiohttp transport") from exc


def refused_connection(exc: BaseException) -> aiohttp.ClientConnectionError | None:
    """The connection error behind a "timeout", or ``None`` for a real timeout."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectionError):
            return None if isinstance(cause, TimeoutError) else cause
        cause = cause.__cause__
    return None
