"""The OpenAI-compatible endpoints: ``/v1/chat/completions``, ``/v1/responses``,
``/v1/embeddings`` and ``/v1/models``.

Each route only translates: the body into a Helios request (:mod:`..gateway`), the call
through :class:`~helios.server.gateway.call.GatewayCall` (the runtime's engine), the result
back into OpenAI's shapes. Errors are OpenAI's ``{"error": {...}}`` with the status of
:mod:`helios.server.gateway.errors`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, NoReturn

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError

from helios.errors import HeliosError
from helios.server.auth import Authenticated
from helios.server.gateway import embeddings as embeddings_protocol
from helios.server.gateway import models as models_protocol
from helios.server.gateway import openai_chat, openai_responses, openai_responses_stream
from helios.server.gateway.cache_control import directives_from
from helios.server.gateway.call import GatewayCall, require_model
from helios.server.gateway.errors import GatewayError, from_helios, invalid, provider_secrets
from helios.server.limits import GATEWAY_BODY_BYTES
from helios.server.openapi import OpenAIError, errors, json_body
from helios.server.state import ServerState

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
CALL_ERRORS = errors(400, 401, 403, 404, 413, 429, 502, 503, 504, shape=OpenAIError)


def openai_error(error: GatewayError) -> JSONResponse:
    return JSONResponse(
        {"error": openai_chat.error_object(error)}, status_code=error.status, headers=error.headers
    )


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


def router(state: ServerState) -> APIRouter:
    routes = APIRouter(tags=["OpenAI-compatible"])

    def runtime() -> Any:
        if state.runtime is None:
            raise GatewayError(503, "overloaded", "Helios is starting or stopping", retry_after_s=1)
        return state.runtime

    async def answer(
        handler: Callable[[], Any], render: Callable[[GatewayError], Response] = openai_error
    ) -> Response:
        try:
            result: Response = await handler()
            return result
        except GatewayError as error:
            return render(error)
        except HeliosError as error:
            return render(from_helios(error, secrets=provider_secrets(state.settings)))
        except ValidationError as exc:  # a value the protocol's model let through, Helios's not
            return render(field_error(exc))

    @routes.post(
        "/v1/chat/completions",
        summary="Create a chat completion (OpenAI-compatible)",
        openapi_extra=json_body(openai_chat.ChatRequest),
        responses=CALL_ERRORS,
    )
    async def chat_completions(request: Request, caller: Authenticated) -> Response:
        async def handle() -> Response:
            body = await parse_body(request, openai_chat.ChatRequest)
            require_model(caller, body.model)
            chat = openai_chat.to_request(body).model_copy(
                update={
                    "context": caller.context(),
                    "cache": directives_from(request.headers, body.cache),
                }
            )
            call = GatewayCall(
                runtime(),
                chat,
                endpoint="/v1/chat/completions",
                streaming=body.stream,
                end_user=body.user,
            )
            if not body.stream:
                completion = await call.complete()
                return JSONResponse(
                    openai_chat.completion_body(call.id, completion),
                    headers=await call.final_headers(),
                )
            chunks = await call.open_stream()
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            events = openai_chat.sse_events(
                call.id, body.model, chunks, include_usage=include_usage
            )
            return _sse(events, call.headers())

        return await answer(handle)

    @routes.post(
        "/v1/responses",
        summary="Create a response (OpenAI Responses API)",
        openapi_extra=json_body(openai_responses.ResponsesRequest),
        responses=CALL_ERRORS,
    )
    async def responses(request: Request, caller: Authenticated) -> Response:
        async def handle() -> Response:
            body = await parse_body(request, openai_responses.ResponsesRequest)
            require_model(caller, body.model)
            turn = openai_responses.to_request(body).model_copy(
                update={
                    "context": caller.context(),
                    "cache": directives_from(request.headers, None),
                }
            )
            call = GatewayCall(
                runtime(), turn, endpoint="/v1/responses", streaming=body.stream, end_user=body.user
            )
            if not body.stream:
                completion = await call.complete()
                payload = openai_responses.response_body(call.id, body, completion)
                return JSONResponse(payload, headers=await call.final_headers())
            chunks = await call.open_stream()
            events = openai_responses_stream.sse_events(call.id, body, chunks)
            return _sse(events, call.headers())

        return await answer(handle)

    @routes.post(
        "/v1/embeddings",
        summary="Create embeddings (OpenAI-compatible)",
        openapi_extra=json_body(embeddings_protocol.EmbeddingsRequest),
        responses=CALL_ERRORS,
    )
    async def embeddings(request: Request, caller: Authenticated) -> Response:
        async def handle() -> Response:
            body = await parse_body(request, embeddings_protocol.EmbeddingsRequest)
            require_model(caller, body.model)
            payload = await embeddings_protocol.embed(runtime(), body)
            return JSONResponse(payload)

        return await answer(handle)

    @routes.get(
        "/v1/models",
        summary="List the models (OpenAI-compatible)",
        responses=errors(401, 503, shape=OpenAIError),
    )
    async def list_models(caller: Authenticated) -> Response:
        async def handle() -> Response:
            return JSONResponse(models_protocol.listing(runtime(), caller))

        return await answer(handle)

    return routes


def _sse(events: AsyncIterator[str], headers: Mapping[str, str]) -> StreamingResponse:
    return StreamingResponse(
        events, media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
    )
