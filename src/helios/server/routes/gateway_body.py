"""A gateway request's JSON body, read and checked the same way for every protocol: strict
types, finite numbers, a size limit while reading, errors that name the field."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from helios.server.gateway.errors import GatewayError, invalid
from helios.server.limits import GATEWAY_BODY_BYTES

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def parse_body(request: Request, model: type[BaseModel]) -> Any:
    """The body as ``model``, or a 400 naming the first field that is wrong.

    Types are strict (``false`` is not a number, ``"0.5"`` not a float) and numbers finite;
    fields Helios does not know are ignored (the models say so), as the official clients
    send newer ones. The body must say it is JSON: a web page may send any site a
    ``text/plain`` POST without asking (no CORS preflight), and a keyless server on
    loopback would otherwise make calls for it."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        shown = media_type or "none"
        raise invalid("body", f"Content-Type must be application/json (got {shown})")
    try:
        raw = json.loads(await _body(request), parse_constant=_not_a_number)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise invalid("body", "not valid JSON") from None
    except ValueError as exc:
        raise invalid("body", str(exc)) from None
    try:
        return model.model_validate(raw, strict=True)
    except ValidationError as exc:
        raise field_error(exc) from None


async def _body(request: Request) -> bytes:
    """The body, or a 413 as soon as it is known to be above :data:`GATEWAY_BODY_BYTES`
    (from its Content-Length, else while reading it): never held whole in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > GATEWAY_BODY_BYTES:
        raise _too_large(int(declared))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > GATEWAY_BODY_BYTES:
            raise _too_large(size)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int) -> GatewayError:
    message = f"body: {size} bytes or more, above the limit of {GATEWAY_BODY_BYTES}"
    return GatewayError(413, "invalid_request", message, param="body")


def _not_a_number(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not a JSON number")


def field_error(exc: ValidationError | RequestValidationError) -> GatewayError:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"] if part != "body") or "body"
    message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
    return invalid(where, message)
