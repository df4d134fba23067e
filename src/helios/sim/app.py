"""The simulator's ASGI app: three provider protocols plus ``/_sim`` control routes.

Routes::

    POST /v1/messages                              Anthropic Messages
    POST /v1/chat/completions                      OpenAI Chat Completions
    POST /v1/embeddings                            OpenAI Embeddings (hashed, not semantic)
    POST /{v1|v1beta|v1alpha}/models/{model}:generateContent         Gemini
    POST /{v1|v1beta|v1alpha}/models/{model}:streamGenerateContent   Gemini (SSE)
    POST /_sim/faults     queue a fault: {"kind": ..., "times": 1, "protocol": null, ...}
    POST /_sim/reset      forget caches, faults, stats and records
    GET  /_sim/stats      requests served per protocol, faults fired per kind
    GET  /_sim/requests   the request bodies received since the last reset

Any protocol request may carry ``x-sim-fault: kind;name=value`` to fault just itself;
one that brings no fault and finds none queued draws one from the config's seeded
:class:`~helios.sim.config.FaultProfile` (none when every rate is 0, the default).
Embeddings count as the ``openai`` protocol for faults, stats and the request log.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helios.sim.anthropic import AnthropicProtocol
from helios.sim.config import ERROR_KINDS, Fault, FaultOrder, SimConfig
from helios.sim.embeddings import EmbeddingsProtocol
from helios.sim.gemini import GeminiProtocol
from helios.sim.openai import OpenAIProtocol
from helios.sim.response import Script, ScriptedResponse
from helios.sim.state import SimState
from helios.sim.wire import BadRequest, ErrorReply, WireProtocol, dumps

FAULT_HEADER = "x-sim-fault"
GEMINI_VERSIONS = frozenset({"v1", "v1beta", "v1alpha"})
_GEMINI_METHODS = {"generateContent": False, "streamGenerateContent": True}


def create_app(config: SimConfig | None = None, *, state: SimState | None = None) -> Starlette:
    """A simulator app; its :class:`SimState` is ``app.state.sim``."""
    sim = state if state is not None else SimState(config)
    anthropic, openai, gemini = AnthropicProtocol(), OpenAIProtocol(), GeminiProtocol()
    embeddings = EmbeddingsProtocol()

    async def anthropic_messages(request: Request) -> Response:
        return await answer(sim, anthropic, request)

    async def openai_chat(request: Request) -> Response:
        return await answer(sim, openai, request)

    async def openai_embeddings(request: Request) -> Response:
        return await answer_embeddings(sim, embeddings, request)

    async def gemini_generate(request: Request) -> Response:
        model, _, method = request.path_params["target"].rpartition(":")
        if request.path_params["version"] not in GEMINI_VERSIONS or method not in _GEMINI_METHODS:
            not_found = {"code": 404, "message": "unknown method", "status": "NOT_FOUND"}
            return JSONResponse({"error": not_found}, 404)
        return await answer(sim, gemini, request, model=model, stream=_GEMINI_METHODS[method])

    async def post_fault(request: Request) -> Response:
        try:
            order = FaultOrder.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        sim.inject(order.fault(), order.times, order.protocol)
        return JSONResponse({"queued": order.model_dump(mode="json")})

    async def post_reset(request: Request) -> Response:
        sim.reset()
        return JSONResponse({"reset": True})

    async def get_stats(request: Request) -> Response:
        return JSONResponse({**sim.stats.as_dict(), "pending_faults": sim.pending_faults})

    async def get_requests(request: Request) -> Response:
        return JSONResponse([asdict(record) for record in sim.requests])

    app = Starlette(
        routes=[
            Route("/v1/messages", anthropic_messages, methods=["POST"]),
            Route("/v1/chat/completions", openai_chat, methods=["POST"]),
            Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
            Route("/{version}/models/{target}", gemini_generate, methods=["POST"]),
            Route("/_sim/faults", post_fault, methods=["POST"]),
            Route("/_sim/reset", post_reset, methods=["POST"]),
            Route("/_sim/stats", get_stats, methods=["GET"]),
            Route("/_sim/requests", get_requests, methods=["GET"]),
        ]
    )
    app.state.sim = sim
    return app


async def answer(
    sim: SimState,
    protocol: WireProtocol,
    request: Request,
    *,
    model: str | None = None,
    stream: bool | None = None,
) -> Response:
    """Serve one protocol request: validate, apply any fault, then play the reply."""
    try:
        body: Any = json.loads(await request.body())
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        call = protocol.parse(body, model)
        fault = sim.take_fault(protocol.name, request.headers.get(FAULT_HEADER))
    except ValueError as exc:  # BadRequest, invalid JSON and a malformed fault header alike
        error = protocol.error("bad_request", str(exc), 0)
        return JSONResponse(error.body, error.status)
    if stream is not None:
        call = replace(call, stream=stream)
    number = sim.admit(protocol.name, request.url.path, body, request.headers)
    ids = _request_ids(number)

    if fault is not None and fault.kind in ERROR_KINDS:
        return _fault_reply(
            protocol.error(fault.kind, fault.message, fault.retry_after_s), fault, ids
        )

    if fault is not None and fault.kind == "connect":
        return ScriptedResponse(Script(media_type="application/json", trailer=(), abort=True))

    usage = sim.prompt_usage(
        protocol.name, call.model, call.segments, explicit=protocol.explicit_cache
    )
    reply = sim.reply(call)
    delay = fault.seconds if fault is not None and fault.kind == "timeout" else 0.0
    stall = fault.seconds if fault is not None and fault.kind == "stall" else 0.0
    slow = fault.seconds_per_chunk if fault is not None and fault.kind == "slow" else 0.0
    drop = fault.after_chunks if fault is not None and fault.kind == "drop" else None
    if call.stream:
        parts = protocol.stream(call, reply, usage, number)
        # Paced by what the stream sends: a Gemini tool call is one piece, not its fragments.
        pacing = sim.pacing(len(parts.pieces), call.model)
        script = Script(
            media_type="text/event-stream",
            preamble=parts.preamble,
            pieces=parts.pieces,
            trailer=parts.trailer,
            headers=ids,
            delay_s=delay,
            ttft_s=pacing.ttft_s + stall + slow,
            gaps_s=tuple(gap + slow for gap in pacing.gaps_s),
            drop_after=drop,
        )
    else:
        chunks = len(reply.streamed_pieces)
        pacing = sim.pacing(chunks, call.model)
        script = Script(
            media_type="application/json",
            trailer=(dumps(protocol.body(call, reply, usage, number)).encode(),),
            headers=ids,
            delay_s=delay + stall + slow * max(chunks, 1) + pacing.total_s,
            drop_after=None if drop is None else 0,
        )
    return ScriptedResponse(script)


async def answer_embeddings(
    sim: SimState, protocol: EmbeddingsProtocol, request: Request
) -> Response:
    """Serve one embeddings request as :func:`answer` serves the others: validate, apply
    any fault (``drop`` closes before the body), pace by the model's latency profile."""
    try:
        body: Any = json.loads(await request.body())
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        call = protocol.parse(body)
        fault = sim.take_fault("openai", request.headers.get(FAULT_HEADER))
    except ValueError as exc:
        error = protocol.error("bad_request", str(exc), 0)
        return JSONResponse(error.body, error.status)
    number = sim.admit("openai", request.url.path, body, request.headers)
    ids = _request_ids(number)
    if fault is not None and fault.kind in ERROR_KINDS:
        return _fault_reply(
            protocol.error(fault.kind, fault.message, fault.retry_after_s), fault, ids
        )
    if fault is not None and fault.kind == "connect":
        return ScriptedResponse(Script(media_type="application/json", trailer=(), abort=True))
    delay = fault.seconds if fault is not None and fault.kind in ("timeout", "stall") else 0.0
    if fault is not None and fault.kind == "slow":
        delay += fault.seconds_per_chunk
    dropped = fault is not None and fault.kind == "drop"
    script = Script(
        media_type="application/json",
        trailer=(dumps(protocol.body(call)).encode(),),
        headers=ids,
        delay_s=delay + sim.pacing(1, call.model).total_s,
        drop_after=0 if dropped else None,
    )
    return ScriptedResponse(script)


def _request_ids(number: int) -> dict[str, str]:
    return {"request-id": f"req_sim{number:08d}", "x-request-id": f"req_sim{number:08d}"}


def _fault_reply(error: ErrorReply, fault: Fault, ids: dict[str, str]) -> Response:
    headers = dict(ids)
    if fault.kind == "rate_limit":
        headers["retry-after"] = f"{fault.retry_after_s:g}"
    return JSONResponse(error.body, error.status, headers=headers)
