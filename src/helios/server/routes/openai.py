"""The OpenAI-compatible endpoints: ``/v1/chat/completions``, ``/v1/responses``,
``/v1/embeddings`` and ``/v1/models``.

Each route only translates: the body into a Helios request (:mod:`..gateway`), the call
through :class:`~helios.server.gateway.call.GatewayCall` (the runtime's engine), the result
back into OpenAI's shapes. Errors are OpenAI's ``{"error": {...}}`` with the status of
:mod:`helios.server.gateway.errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from helios.runtime import Runtime
from helios.server.auth import Authenticated
from helios.server.gateway import embeddings as embeddings_protocol
from helios.server.gateway import models as models_protocol
from helios.server.gateway import openai_chat, openai_responses, openai_responses_stream
from helios.server.gateway.cache_control import directives_from
from helios.server.gateway.call import GatewayCall, require_model
from helios.server.gateway.errors import GatewayError
from helios.server.openapi import OpenAIError, errors, json_body
from helios.server.routes.gateway_body import SSE_HEADERS, parse_body
from helios.server.routes.protocol_call import answer as answer_call
from helios.server.routes.protocol_call import serving_runtime
from helios.server.state import ServerState

CALL_ERRORS = errors(400, 401, 403, 404, 413, 429, 502, 503, 504, shape=OpenAIError)


def openai_error(error: GatewayError) -> JSONResponse:
    return JSONResponse(
        {"error": openai_chat.error_object(error)}, status_code=error.status, headers=error.headers
    )


def router(state: ServerState) -> APIRouter:
    routes = APIRouter(tags=["OpenAI-compatible"])

    def runtime() -> Runtime:
        return serving_runtime(state)

    async def answer(
        handler: Callable[[], Awaitable[Response]],
        render: Callable[[GatewayError], Response] = openai_error,
    ) -> Response:
        return await answer_call(state, handler, render)

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
