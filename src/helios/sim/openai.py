"""OpenAI Chat Completions (``POST /v1/chat/completions``), plain and streamed.

Prompt caching is automatic: ``usage.prompt_tokens`` includes the cached tokens, which
``usage.prompt_tokens_details.cached_tokens`` reports. ``prompt_cache_key``, ``seed``,
``temperature`` and the like are accepted and do not change the reply.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from helios.sim.cache import PromptUsage
from helios.sim.config import FaultKind, ProtocolName
from helios.sim.text import Reply, Segment
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
_FINISH = {"end": "stop", "length": "length", "stop_sequence": "stop"}
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
        return SimCall(
            model=need(body, "model", str),
            segments=(
                *tool_segments,
                *_message_segments(need(body, "messages", list)),
            ),
            max_tokens=max_tokens if max_tokens is not None else positive_int(body, "max_tokens"),
            stop=stop_list(body.get("stop"), "stop"),
            stream=bool(want(body, "stream", bool, default=False)),
            include_usage=bool(options.get("include_usage", False)),
        )

    def body(self, call: SimCall, reply: Reply, usage: PromptUsage, number: int) -> JSONObject:
        message: JSONObject = {
            "role": "assistant",
            "content": reply.text,
            "refusal": None,
            "annotations": [],
        }
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
        return StreamParts(
            preamble=(chunk({"role": "assistant", "content": "", "refusal": None}),),
            pieces=tuple(chunk({"content": piece}) for piece in reply.pieces),
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
