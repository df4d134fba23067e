"""Refusals raised before a gateway route runs (authentication: 401, 403, 503), in the
shape of the protocol the client speaks: Anthropic's under ``/v1/messages``, OpenAI's
elsewhere under ``/v1/``; every other route keeps FastAPI's ``{"detail": ...}``."""

from __future__ import annotations

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from helios.server.gateway import anthropic_messages, openai_chat
from helios.server.gateway.errors import ErrorKind, GatewayError

_KINDS: dict[int, ErrorKind] = {
    400: "invalid_request",
    401: "authentication",
    403: "permission",
    404: "not_found",
    429: "rate_limit",
    503: "overloaded",
}


async def protocol_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if not path.startswith("/v1/"):
        return await http_exception_handler(request, exc)
    error = GatewayError(exc.status_code, _KINDS.get(exc.status_code, "internal"), str(exc.detail))
    headers = {**(exc.headers or {}), **error.headers}
    if path.startswith("/v1/messages"):
        body = anthropic_messages.error_body(error)
    else:
        body = {"error": openai_chat.error_object(error)}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)
