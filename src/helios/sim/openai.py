"""OpenAI Chat Completions (``POST /v1/chat/completions``), plain and streamed.

Prompt caching is automatic: ``usage.prompt_tokens`` includes the cached tokens, which
``usage.prompt_tokens_details.cached_tokens`` reports. ``prompt_cache_key``, ``seed``,
``temperature`` and the like are accepted and do not change the reply.

Tools (see :mod:`helios.sim.tools` for when the model calls one): ``tools`` of type
``function``, ``tool_choice`` ``auto``/``none``/``required`` or
``{"type": "function", "function": {"name": ...}}``. A call comes back as
``message.tool_calls`` (``content`` null) with ``finish_reason: tool_calls``; streamed,
the first chunk's ``delta.tool_calls`` names the call's index, id, type and function name,
and each later chunk carries a piece of ``function.arguments``. ``response_format``
``json_schema`` makes the content a JSON document by that schema (``json_object``: an
object with one string, ``reply``). Custom (non-function) tools are accepted, never called.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from helios.sim.cache import PromptUsage
from helios.sim.config import FaultKind, ProtocolName
from helios.sim.text import Reply, Segment, ToolCallReply
from helios.sim.tools import ANY_JSON_OBJECT, SimTool, ToolMode, ToolOffer
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

_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}
_FINISH = {"end": "stop", "length": "length", "stop_sequence": "stop", "tool_call": "tool_calls"}
_TOOL_MODES: dict[str, ToolMode] = {"auto": "auto", "none": "none", "required": "required"}
_ERRORS: dict[FaultKind, tuple[int, str, str | None, str]] = {
    "rate_limit": (429, "requests", "rate_limit_exceeded", "Rate limit reached (simulated)."),
    "server_error": (500, "server_error", None, "The server had an error (simulated)."),
    "overloaded": (503, "server_error", None, "The server is overloaded (simulated)."),
    "auth": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key (simulated)."),
    "bad_request": (400, "invalid_request_error", None, "Invalid request (simulated)."),
}


class OpenAIProtocol(WireProtocol):
    name: ProtocolName = "openai"
    explicit_cache = False

    def parse(self, body: Mapping[str, Any], model: str | None = None) -> SimCall:
        if (want(body, "n", int, default=1) or 1) != 1:
            raise BadRequest("n: the simulator answers with one choice only")
        tools = want(body, "tools", list, default=[]) or []
        tool_segments = [Segment("tools", dumps({"tools": tools}))] if tools else []
        options = want(body, "stream_options", dict, default={}) or {}
        max_tokens = positive_int(body, "max_completion_tokens")
        messages = need(body, "messages", list)
        last = messages[-1] if messages else None
        after_tool_result = isinstance(last, Mapping) and last.get("role") in ("tool", "function")
        return SimCall(
            model=need(body, "model", str),
            segments=(
                *tool_segments,
                *_message_segments(messages),
            ),
            max_tokens=max_tokens if max_tokens is not None else positive_int(body, "max_tokens"),
            stop=stop_list(body.get("stop"), "stop"),
            stream=bool(want(body, "stream", bool, default=False)),
            include_usage=bool(options.get("include_usage", False)),
            tools=_tool_offer(tools, body.get("tool_choice")),
            after_tool_result=after_tool_result,
            response_schema=_response_schema(body.get("response_format")),
        )

    def body(self, call: SimCall, reply: Reply, usage: PromptUsage, number: int) -> JSONObject:
        message: JSONObject = {
            "role": "assistant",
            "content": reply.text,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_call is not None:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": _call_id(reply.tool_call),
                    "type": "function",
                    "function": {
                        "name": reply.tool_call.name,
                        "arguments": reply.tool_call.arguments_json,
                    },
                }
            ]
        return {
            **_head(call, number, "chat.completion"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _FINISH[reply.finish],
                }
            ],
            "usage": _usage(usage, reply.output_tokens),
        }

    def stream(self, call: SimCall, reply: Reply, usage: PromptUsage, number: int) -> StreamParts:
        head = _head(call, number, "chat.completion.chunk")
        if call.include_usage:
            head["usage"] = None  # the real API marks every chunk but the last this way

        def chunk(delta: JSONObject, finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse({**head, "choices": [choice]})

        trailer = [chunk({}, _FINISH[reply.finish])]
        if call.include_usage:
            trailer.append(
                sse({**head, "choices": [], "usage": _usage(usage, reply.output_tokens)})
            )
        trailer.append(sse("[DONE]"))
        tool_call = reply.tool_call
        if tool_call is None:
            return StreamParts(
                preamble=(chunk({"role": "assistant", "content": "", "refusal": None}),),
                pieces=tuple(chunk({"content": piece}) for piece in reply.pieces),
                trailer=tuple(trailer),
            )
        # As the real API streams a call: the first delta names it, the rest carry arguments.
        opening = {
            "index": 0,
            "id": _call_id(tool_call),
            "type": "function",
            "function": {"name": tool_call.name, "arguments": ""},
        }
        return StreamParts(
            preamble=(chunk({"role": "assistant", "content": None, "tool_calls": [opening]}),),
            pieces=tuple(
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                for piece in tool_call.pieces
            ),
            trailer=tuple(trailer),
        )

    def error(self, kind: FaultKind, message: str | None, retry_after_s: float) -> ErrorReply:
        status, error_type, code, default = _ERRORS[kind]
        return ErrorReply(
            status,
            {
                "error": {
                    "message": message or default,
                    "type": error_type,
                    "param": None,
                    "code": code,
                }
            },
        )


def _head(call: SimCall, number: int, kind: str) -> JSONObject:
    return {
        "id": f"chatcmpl-sim{number:08d}",
        "object": kind,
        "created": int(time.time()),
        "model": call.model,
        "service_tier": "default",
        "system_fingerprint": "fp_helios_sim",
    }


def _call_id(call: ToolCallReply) -> str:
    return f"call_{call.key}"


def _tool_offer(tools: list[Any], choice: object) -> ToolOffer:
    offered = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("type"), str):
            raise BadRequest(f"tools.{i}: expected a tool with a type")
        if tool["type"] != "function":
            continue  # custom tools take free text: the simulated model never calls them
        function = need(tool, "function", dict, f"tools.{i}.")
        offered.append(
            SimTool(
                name=need(function, "name", str, f"tools.{i}.function."),
                parameters=schema_object(
                    function.get("parameters"), f"tools.{i}.function.parameters"
                ),
            )
        )
    mode: ToolMode = "auto"
    name: str | None = None
    if isinstance(choice, str) and choice in _TOOL_MODES:
        mode = _TOOL_MODES[choice]
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        function = need(choice, "function", dict, "tool_choice.")
        mode, name = "tool", need(function, "name", str, "tool_choice.function.")
    elif isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        allowed = want(choice, "allowed_tools", dict, "tool_choice.", default={}) or {}
        mode = "required" if allowed.get("mode") == "required" else "auto"
    elif choice is not None:
        raise BadRequest("tool_choice: expected 'auto', 'none', 'required' or a named function")
    if choice is not None and not tools:
        raise BadRequest("tool_choice: only allowed when tools are specified")
    return ToolOffer(tuple(offered), mode, name)


def _response_schema(response_format: object) -> Mapping[str, Any] | None:
    if response_format is None:
        return None
    if not isinstance(response_format, Mapping):
        raise BadRequest("response_format: expected an object")
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = need(response_format, "json_schema", dict, "response_format.")
        need(spec, "name", str, "response_format.json_schema.")
        return schema_object(spec.get("schema"), "response_format.json_schema.schema")
    if kind == "json_object":
        return ANY_JSON_OBJECT
    if kind == "text":
        return None
    raise BadRequest("response_format.type: expected 'text', 'json_object' or 'json_schema'")


def _usage(usage: PromptUsage, output_tokens: int) -> JSONObject:
    prompt = usage.total_input_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output_tokens,
        "total_tokens": prompt + output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _message_segments(messages: list[Any]) -> list[Segment]:
    if not messages:
        raise BadRequest("messages: at least one message is required")
    segments: list[Segment] = []
    for i, message in enumerate(messages):
        role = _ROLES.get(message.get("role", "")) if isinstance(message, Mapping) else None
        if role is None:
            raise BadRequest(f"messages.{i}: expected a message with a known role")
        content = message.get("content")
        if isinstance(content, str):
            segments.append(Segment(role, content))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, Mapping):
                    raise BadRequest(f"messages.{i}.content.{j}: expected a content part")
                segments.append(Segment(role, block_text(part)))
        elif content is not None:
            raise BadRequest(f"messages.{i}.content: expected a string or a list of parts")
        if message.get("tool_calls"):
            segments.append(Segment(role, dumps({"tool_calls": message["tool_calls"]})))
    return segments
