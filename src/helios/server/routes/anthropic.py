"""The Anthropic-compatible endpoints: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

The body becomes a Helios request (:mod:`helios.server.gateway.anthropic_messages`), the
call goes through :class:`~helios.server.gateway.call.GatewayCall` (the runtime's engine)
and comes back in Anthropic's shapes; errors are ``{"type": "error", ...}``.
``count_tokens`` estimates as the governor does (characters ÷ 4 plus a few tokens per
turn and per tool definition): Helios has no Anthropic tokenizer, so treat it as a budget
estimate, not a bill.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from helios.governance.estimate import heuristic_tokens, prompt_tokens
from helios.runtime import Runtime
from helios.server.auth import Authenticated
from helios.server.gateway import anthropic_messages as protocol
from helios.server.gateway.cache_control import directives_from
from helios.server.gateway.call import GatewayCall, require_model
from helios.server.gateway.errors import GatewayError
from helios.server.openapi import AnthropicError, errors, json_body
from helios.server.routes.gateway_body import SSE_HEADERS, parse_body
from helios.server.routes.protocol_call import answer, serving_runtime
from helios.server.state import ServerState

TOOL_OVERHEAD_TOKENS = 8


def anthropic_error(error: GatewayError) -> JSONResponse:
    return JSONResponse(protocol.error_body(error), status_code=error.status, headers=error.headers)


def router(state: ServerState) -> APIRouter:
    routes = APIRouter(tags=["Anthropic-compatible"])

    def runtime() -> Runtime:
        return serving_runtime(state)

    @routes.post(
        "/v1/messages",
        summary="Create a message (Anthropic-compatible)",
        openapi_extra=json_body(protocol.MessagesRequest),
        responses=errors(400, 401, 403, 404, 413, 429, 502, 503, 504, shape=AnthropicError),
    )
    async def messages(request: Request, caller: Authenticated) -> Response:
        async def handle() -> Response:
            body = await parse_body(request, protocol.MessagesRequest)
            require_model(caller, body.model)
            turn = protocol.to_request(body).model_copy(
                update={
                    "context": caller.context(),
                    "cache": directives_from(request.headers, None),
                }
            )
            end_user = body.metadata.user_id if body.metadata is not None else None
            call = GatewayCall(
                runtime(), turn, endpoint="/v1/messages", streaming=body.stream, end_user=end_user
            )
            if not body.stream:
                completion = await call.complete()
                return JSONResponse(
                    protocol.message_body(call.id, completion), headers=await call.final_headers()
                )
            chunks = await call.open_stream()
            return StreamingResponse(
                protocol.sse_events(call.id, body.model, chunks),
                media_type="text/event-stream",
                headers={**SSE_HEADERS, **call.headers()},
            )

        return await answer(state, handle, anthropic_error)

    @routes.post(
        "/v1/messages/count_tokens",
        summary="Count a message's input tokens",
        openapi_extra=json_body(protocol.CountTokensRequest),
        responses=errors(400, 401, 403, 404, 413, 503, shape=AnthropicError),
    )
    async def count_tokens(request: Request, caller: Authenticated) -> Response:
        async def handle() -> Response:
            body = await parse_body(request, protocol.CountTokensRequest)
            require_model(caller, body.model)
            counted = protocol.to_request(body)
            tools = sum(
                heuristic_tokens(f"{t.name} {t.description} {json.dumps(t.parameters)}")
                + TOOL_OVERHEAD_TOKENS
                for t in counted.tools
            )
            return JSONResponse({"input_tokens": prompt_tokens(counted) + tools})

        return await answer(state, handle, anthropic_error)

    return routes
