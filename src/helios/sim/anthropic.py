"""The Anthropic Messages API (``POST /v1/messages``), plain and streamed.

The cacheable prompt runs tools, then system, then messages; blocks with ``cache_control``
(``{"type": "ephemeral", "ttl": "5m" | "1h"}``) are breakpoints, at most four, as the real
API enforces. A top-level ``cache_control`` marks the last block, as automatic caching does.
Sampling fields (``temperature``, ``top_p``, ...) are accepted and ignored.

Tools (see :mod:`helios.sim.tools` for when the model calls one): custom ``tools``
(``name``, ``description``, ``input_schema``), ``tool_choice`` ``{"type": "auto" | "any" |
"none"}`` or ``{"type": "tool", "name": ...}``. A call is one ``tool_use`` content block
with ``stop_reason: tool_use``; streamed, a ``content_block_start`` names the block's id
and name (``input: {}``), several ``input_json_delta`` events carry ``partial_json``
pieces, then ``content_block_stop``. A user turn holding a ``tool_result`` block is a
tool result. Server tools (those with a versioned ``type``) are accepted, never called.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from helios.messages import CacheTTL
from helios.sim.cache import PromptUsage
from helios.sim.config import FaultKind, ProtocolName
from helios.sim.text import Reply, Segment, ToolCallReply
from helios.sim.tools import SimTool, ToolMode, ToolOffer
from helios.sim.wire import (
    BadRequest,
    ErrorReply,
    JSONObject,
    SimCall,
    StreamParts,
    WireProtocol,
    block_text,
    need,
    positive_int,
    sse,
    stop_list,
    want,
)

MAX_BREAKPOINTS = 4
_STOP_REASONS = {
    "end": "end_turn",
    "length": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_call": "tool_use",
}
_TOOL_MODES: dict[str, ToolMode] = {"auto": "auto", "any": "required", "none": "none"}
_ERRORS: dict[FaultKind, tuple[int, str, str]] = {
    "rate_limit": (429, "rate_limit_error", "Simulated rate limit: too many requests."),
    "server_error": (500, "api_error", "Simulated internal server error."),
    "overloaded": (529, "overloaded_error", "Overloaded (simulated)."),
    "auth": (401, "authentication_error", "invalid x-api-key (simulated)"),
    "bad_request": (400, "invalid_request_error", "Simulated invalid request."),
}


class AnthropicProtocol(WireProtocol):
    name: ProtocolName = "anthropic"
    explicit_cache = True

    def parse(self, body: Mapping[str, Any], model: str | None = None) -> SimCall:
        tools = want(body, "tools", list, default=[]) or []
        messages = need(body, "messages", list)
        segments = [
            *_tool_segments(tools),
            *_system_segments(body.get("system")),
            *_message_segments(messages),
        ]
        automatic = _cache_ttl(body, "")
        if automatic is not None and segments and segments[-1].cache_ttl is None:
            # Top-level cache_control marks the last cacheable block (automatic caching).
            segments[-1] = replace(segments[-1], cache_ttl=automatic)
        marks = sum(segment.cache_ttl is not None for segment in segments)
        if marks > MAX_BREAKPOINTS:
            raise BadRequest(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {marks}."
            )
        max_tokens = positive_int(body, "max_tokens")
        if max_tokens is None:
            raise BadRequest("max_tokens: field required")
        return SimCall(
            model=need(body, "model", str),
            segments=tuple(segments),
            max_tokens=max_tokens,
            stop=stop_list(body.get("stop_sequences"), "stop_sequences"),
            stream=bool(want(body, "stream", bool, default=False)),
            tools=_tool_offer(tools, body.get("tool_choice")),
            after_tool_result=_holds_a_tool_result(messages[-1]),
        )

    def body(self, call: SimCall, reply: Reply, usage: PromptUsage, number: int) -> JSONObject:
        return {
            **_message_head(call, number),
            "content": _content(reply),
            "stop_reason": _STOP_REASONS[reply.finish],
            "stop_sequence": reply.stop_sequence,
            "usage": _usage(usage, reply.output_tokens),
        }

    def stream(self, call: SimCall, reply: Reply, usage: PromptUsage, number: int) -> StreamParts:
        start = {
            **_message_head(call, number),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # As the real API does: output_tokens is a placeholder until message_delta.
            "usage": _usage(usage, 1),
        }
        final_usage = _usage(usage, reply.output_tokens)
        del final_usage["cache_creation"], final_usage["service_tier"]
        tool_call = reply.tool_call
        if tool_call is None:
            block: JSONObject = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in reply.pieces]
        else:
            block = {"type": "tool_use", "id": _call_id(tool_call), "name": tool_call.name}
            block["input"] = {}
            deltas = [
                {"type": "input_json_delta", "partial_json": piece} for piece in tool_call.pieces
            ]
        return StreamParts(
            preamble=(
                sse({"type": "message_start", "message": start}, "message_start"),
                sse(
                    {"type": "content_block_start", "index": 0, "content_block": block},
                    "content_block_start",
                ),
                sse({"type": "ping"}, "ping"),
            ),
            pieces=tuple(
                sse(
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                    "content_block_delta",
                )
                for delta in deltas
            ),
            trailer=(
                sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                sse(
                    {
                        "type": "message_delta",
                        "delta": {
                            "stop_reason": _STOP_REASONS[reply.finish],
                            "stop_sequence": reply.stop_sequence,
                        },
                        "usage": final_usage,
                    },
                    "message_delta",
                ),
                sse({"type": "message_stop"}, "message_stop"),
            ),
        )

    def error(self, kind: FaultKind, message: str | None, retry_after_s: float) -> ErrorReply:
        status, error_type, default = _ERRORS[kind]
        return ErrorReply(
            status,
            {"type": "error", "error": {"type": error_type, "message": message or default}},
        )


def _message_head(call: SimCall, number: int) -> JSONObject:
    return {
        "id": f"msg_sim{number:08d}",
        "type": "message",
        "role": "assistant",
        "model": call.model,
    }


def _content(reply: Reply) -> list[JSONObject]:
    call = reply.tool_call
    if call is not None:
        block = {"type": "tool_use", "id": _call_id(call), "name": call.name}
        return [{**block, "input": dict(call.arguments)}]
    return [{"type": "text", "text": reply.text}] if reply.text else []


def _call_id(call: ToolCallReply) -> str:
    return f"toolu_sim{call.key}"


def _tool_offer(tools: list[Any], choice: object) -> ToolOffer:
    offered = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise BadRequest(f"tools.{i}: expected an object")
        if tool.get("type") not in (None, "custom"):
            continue  # a server tool (web search, bash, ...): the simulated model leaves it
        offered.append(
            SimTool(
                name=need(tool, "name", str, f"tools.{i}."),
                parameters=need(tool, "input_schema", dict, f"tools.{i}."),
            )
        )
    if choice is None:
        return ToolOffer(tuple(offered))
    kind = choice.get("type") if isinstance(choice, Mapping) else None
    if kind == "tool":
        assert isinstance(choice, Mapping)
        return ToolOffer(tuple(offered), "tool", need(choice, "name", str, "tool_choice."))
    if not isinstance(kind, str) or kind not in _TOOL_MODES:
        raise BadRequest("tool_choice.type: expected 'auto', 'any', 'tool' or 'none'")
    return ToolOffer(tuple(offered), _TOOL_MODES[kind])


def _holds_a_tool_result(message: object) -> bool:
    content = message.get("content") if isinstance(message, Mapping) else None
    return isinstance(content, list) and any(
        isinstance(block, Mapping) and block.get("type") == "tool_result" for block in content
    )


def _usage(usage: PromptUsage, output_tokens: int) -> JSONObject:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write_5m_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _cache_ttl(block: Mapping[str, Any], where: str) -> CacheTTL | None:
    control = block.get("cache_control")
    if control is None:
        return None
    if not isinstance(control, Mapping) or control.get("type") != "ephemeral":
        raise BadRequest(f"{where}cache_control: expected {{'type': 'ephemeral'}}")
    ttl = control.get("ttl", "5m")
    if ttl not in ("5m", "1h"):
        raise BadRequest(f"{where}cache_control.ttl: expected '5m' or '1h', got {ttl!r}")
    return "1h" if ttl == "1h" else "5m"


def _blocks(content: object, role: str, where: str) -> list[Segment]:
    if isinstance(content, str):
        return [Segment(role, content)]
    if not isinstance(content, list):
        raise BadRequest(f"{where}: expected a string or a list of content blocks")
    segments = []
    for i, block in enumerate(content):
        if not isinstance(block, Mapping) or not isinstance(block.get("type"), str):
            raise BadRequest(f"{where}.{i}: expected a content block with a type")
        segments.append(Segment(role, block_text(block), _cache_ttl(block, f"{where}.{i}.")))
    return segments


def _tool_segments(tools: list[Any]) -> list[Segment]:
    segments = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise BadRequest(f"tools.{i}: expected an object")
        segments.append(Segment("tools", block_text(tool), _cache_ttl(tool, f"tools.{i}.")))
    return segments


def _system_segments(system: object) -> list[Segment]:
    if system is None or system == "":
        return []
    return _blocks(system, "system", "system")


def _message_segments(messages: list[Any]) -> list[Segment]:
    if not messages:
        raise BadRequest("messages: at least one message is required")
    segments = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages.{i}: expected a message with role 'user' or 'assistant'")
        segments.extend(_blocks(message.get("content"), message["role"], f"messages.{i}.content"))
    return segments
