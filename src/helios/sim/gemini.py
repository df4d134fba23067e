"""The Gemini API: ``POST /{version}/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse`` (google-genai uses ``v1`` by default, ``v1beta`` when
asked; both are served).

Implicit caching works like OpenAI's: ``promptTokenCount`` includes the cached tokens,
which ``cachedContentTokenCount`` reports (absent when zero, as the real API omits it).
Streamed chunks carry cumulative ``usageMetadata``; the last chunk has the final counts
and the ``finishReason``. Explicit caches (``cachedContent``) are not simulated.

Tools (see :mod:`helios.sim.tools` for when the model calls one): ``tools`` holding
``functionDeclarations`` (``parameters`` in OpenAPI form or ``parametersJsonSchema``),
``toolConfig.functionCallingConfig`` with ``mode`` ``AUTO``/``VALIDATED``/``ANY``/``NONE``
and, for ``ANY``, ``allowedFunctionNames`` (the first is called). A call is one
``functionCall`` part (``name`` and ``args``, no ``id``, as the Gemini API sends it) with
``finishReason: STOP``; streamed, it arrives whole in one chunk, as Gemini streams calls.
A content holding a ``functionResponse`` part is a tool result. JSON by schema:
``generationConfig.responseSchema`` or ``responseJsonSchema``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from helios.sim.cache import PromptUsage
from helios.sim.config import FaultKind, ProtocolName
from helios.sim.text import Reply, Segment, count_tokens
from helios.sim.tools import SimTool, ToolMode, ToolOffer
from helios.sim.wire import (
    BadRequest,
    ErrorReply,
    JSONObject,
    SimCall,
    StreamParts,
    WireProtocol,
    block_text,
    dumps,
    need,
    positive_int,
    schema_object,
    sse,
    stop_list,
    want,
)

_ROLES = {"user": "user", "model": "assistant", "function": "tool", "tool": "tool"}
_FINISH = {"end": "STOP", "length": "MAX_TOKENS", "stop_sequence": "STOP", "tool_call": "STOP"}
# The REST API takes proto field names in either spelling; google-genai sends snake_case.
_PARAMETER_KEYS = ("parametersJsonSchema", "parameters_json_schema", "parameters")
_TOOL_MODES: dict[str, ToolMode] = {
    "AUTO": "auto",
    "VALIDATED": "auto",
    "MODE_UNSPECIFIED": "auto",
    "ANY": "required",
    "NONE": "none",
}
_ERRORS: dict[FaultKind, tuple[int, str, str]] = {
    "rate_limit": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (simulated)."),
    "server_error": (500, "INTERNAL", "An internal error has occurred (simulated)."),
    "overloaded": (503, "UNAVAILABLE", "The model is overloaded (simulated)."),
    "auth": (401, "UNAUTHENTICATED", "API key not valid (simulated)."),
    "bad_request": (400, "INVALID_ARGUMENT", "Invalid argument (simulated)."),
}


class GeminiProtocol(WireProtocol):
    name: ProtocolName = "gemini"
    explicit_cache = False

    def parse(self, body: Mapping[str, Any], model: str | None = None) -> SimCall:
        if model is None:
            raise BadRequest("model: missing from the URL")
        if body.get("cachedContent") or body.get("cached_content"):
            raise BadRequest("cachedContent: explicit caches are not simulated")
        config = _either(body, "generationConfig", "generation_config")
        if (want(config, "candidateCount", int, default=1) or 1) != 1:
            raise BadRequest("generationConfig.candidateCount: the simulator answers with one")
        system = _either(body, "systemInstruction", "system_instruction")
        tools = want(body, "tools", list, default=[]) or []
        segments = [Segment("tools", dumps({"tools": tools}))] if tools else []
        if system:
            segments.extend(_parts(system, "system", "systemInstruction"))
        contents = need(body, "contents", list)
        segments.extend(_content_segments(contents))
        return SimCall(
            model=model.removeprefix("models/"),
            segments=tuple(segments),
            max_tokens=positive_int(config, "maxOutputTokens", "generationConfig."),
            stop=stop_list(config.get("stopSequences"), "generationConfig.stopSequences"),
            tools=_tool_offer(tools, _either(body, "toolConfig", "tool_config")),
            after_tool_result=_holds_a_function_response(contents[-1]),
            response_schema=_response_schema(config),
        )

    def body(self, call: SimCall, reply: Reply, usage: PromptUsage, number: int) -> JSONObject:
        return _response(
            call, number, _parts_of(reply), _FINISH[reply.finish], usage, reply.output_tokens
        )

    def stream(self, call: SimCall, reply: Reply, usage: PromptUsage, number: int) -> StreamParts:
        pieces = []
        if reply.tool_call is not None:
            pieces.append(
                sse(_response(call, number, _parts_of(reply), None, usage, reply.output_tokens))
            )
        sent = ""
        for piece in reply.pieces:
            sent += piece
            parts = [{"text": piece}]
            pieces.append(sse(_response(call, number, parts, None, usage, count_tokens(sent))))
        last = _response(
            call, number, [{"text": ""}], _FINISH[reply.finish], usage, reply.output_tokens
        )
        return StreamParts(preamble=(), pieces=tuple(pieces), trailer=(sse(last),))

    def error(self, kind: FaultKind, message: str | None, retry_after_s: float) -> ErrorReply:
        code, status, default = _ERRORS[kind]
        error: JSONObject = {"code": code, "message": message or default, "status": status}
        if kind == "rate_limit":
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{retry_after_s:g}s",
                }
            ]
        return ErrorReply(code, {"error": error})


def _response(
    call: SimCall,
    number: int,
    parts: list[JSONObject],
    finish: str | None,
    usage: PromptUsage,
    output_tokens: int,
) -> JSONObject:
    candidate: JSONObject = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": _usage(usage, output_tokens),
        "modelVersion": call.model,
        "responseId": f"sim{number:08d}",
    }


def _parts_of(reply: Reply) -> list[JSONObject]:
    call = reply.tool_call
    if call is not None:
        return [{"functionCall": {"name": call.name, "args": dict(call.arguments)}}]
    return [{"text": reply.text}]


def _tool_offer(tools: list[Any], config: Mapping[str, Any]) -> ToolOffer:
    offered = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise BadRequest(f"tools.{i}: expected an object")
        key = "functionDeclarations" if "functionDeclarations" in tool else "function_declarations"
        declarations = want(tool, key, list, f"tools.{i}.", default=[]) or []
        for j, declaration in enumerate(declarations):
            where = f"tools.{i}.functionDeclarations.{j}."
            if not isinstance(declaration, Mapping):
                raise BadRequest(f"{where[:-1]}: expected an object")
            schema = next((declaration[k] for k in _PARAMETER_KEYS if k in declaration), None)
            offered.append(
                SimTool(
                    name=need(declaration, "name", str, where),
                    parameters=schema_object(schema, f"{where}parameters"),
                )
            )
    calling = _either(config, "functionCallingConfig", "function_calling_config")
    mode = str(calling.get("mode") or "AUTO").upper()
    if mode not in _TOOL_MODES:
        raise BadRequest(f"toolConfig.functionCallingConfig.mode: unknown mode '{mode}'")
    allowed = _either_list(calling, "allowedFunctionNames", "allowed_function_names")
    if allowed and mode == "ANY":
        return ToolOffer(tuple(offered), "tool", str(allowed[0]))
    return ToolOffer(tuple(offered), _TOOL_MODES[mode])


def _holds_a_function_response(content: object) -> bool:
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return isinstance(parts, list) and any(
        isinstance(part, Mapping) and ("functionResponse" in part or "function_response" in part)
        for part in parts
    )


def _response_schema(config: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for camel, snake in (
        ("responseJsonSchema", "response_json_schema"),
        ("responseSchema", "response_schema"),
    ):
        value = config.get(camel, config.get(snake))
        if value is not None:
            return schema_object(value, f"generationConfig.{camel}")
    return None


def _usage(usage: PromptUsage, output_tokens: int) -> JSONObject:
    prompt = usage.total_input_tokens
    metadata: JSONObject = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt + output_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if usage.cache_read_tokens:
        metadata["cachedContentTokenCount"] = usage.cache_read_tokens
        metadata["cacheTokensDetails"] = [
            {"modality": "TEXT", "tokenCount": usage.cache_read_tokens}
        ]
    return metadata


def _either(body: Mapping[str, Any], camel: str, snake: str) -> Mapping[str, Any]:
    # The REST API takes proto field names in either spelling.
    key = camel if camel in body else snake
    return want(body, key, dict, default={}) or {}


def _either_list(body: Mapping[str, Any], camel: str, snake: str) -> list[Any]:
    key = camel if camel in body else snake
    return want(body, key, list, default=[]) or []


def _parts(content: Mapping[str, Any], role: str, where: str) -> list[Segment]:
    parts = content.get("parts")
    if not isinstance(parts, list):
        raise BadRequest(f"{where}.parts: expected a list of parts")
    segments = []
    for i, part in enumerate(parts):
        if not isinstance(part, Mapping):
            raise BadRequest(f"{where}.parts.{i}: expected an object")
        segments.append(Segment(role, block_text(part)))
    return segments


def _content_segments(contents: list[Any]) -> list[Segment]:
    if not contents:
        raise BadRequest("contents: at least one content is required")
    segments = []
    for i, content in enumerate(contents):
        role = _ROLES.get(content.get("role") or "user") if isinstance(content, Mapping) else None
        if role is None:
            raise BadRequest(f"contents.{i}: expected a content with role 'user' or 'model'")
        segments.extend(_parts(content, role, f"contents.{i}"))
    return segments
