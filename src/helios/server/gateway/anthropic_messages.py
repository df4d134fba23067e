"""Anthropic Messages, as the official ``anthropic`` SDK speaks it, to and from Helios.

In: ``model``, ``max_tokens`` (required, as Anthropic requires it), ``system`` (a string or
text blocks), ``messages`` whose content is a string or blocks: ``text``, ``tool_use``
(assistant) and ``tool_result`` (user); ``cache_control`` on a system block or a message's
block becomes an L1 breakpoint there (``ttl`` 5m or 1h). ``tools`` / ``tool_choice``,
``temperature``, ``top_p``, ``stop_sequences``, ``metadata.user_id`` (the end user, kept in
the ledger), ``stream``. Image and document blocks, ``top_k`` and extended ``thinking``
are refused with a 400 naming them.

Out: a ``message`` object, or its event stream (``message_start``,
``content_block_start/delta/stop`` for text and ``tool_use`` blocks, ``message_delta`` with
the stop reason and usage, ``message_stop``); errors are
``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from helios.messages import (
    TOOL_NAME_PATTERN,
    CacheControl,
    Chunk,
    Completion,
    Message,
    Request,
    SamplingParams,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Usage,
)
from helios.server.gateway.errors import GatewayError, invalid
from helios.server.gateway.protocol_body import ProtocolBody
from helios.server.limits import MAX_TOKENS

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


class CacheControlIn(ProtocolBody):
    type: Literal["ephemeral"] = "ephemeral"
    ttl: Literal["5m", "1h"] = "5m"


class Block(BaseModel):
    """Any content block; which fields a type needs, and which types are served, is checked
    when translating (so that the 400 names the block's type)."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[dict[str, Any]] | None = None
    is_error: bool | None = None
    cache_control: CacheControlIn | None = None
    citations: list[Any] | None = None


class MessageIn(ProtocolBody):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolIn(ProtocolBody):
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    cache_control: CacheControlIn | None = None
    type: Literal["custom"] | None = None


class ToolChoiceIn(ProtocolBody):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(default=None, pattern=TOOL_NAME_PATTERN)
    disable_parallel_tool_use: bool | None = None


class Metadata(ProtocolBody):
    user_id: str | None = Field(default=None, max_length=256)


class MessagesRequest(ProtocolBody):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "model": "sonnet",
                    "max_tokens": 64,
                    "messages": [{"role": "user", "content": "What is a vector index?"}],
                }
            ]
        },
    )

    model: str = Field(examples=["sonnet"])
    max_tokens: int = Field(gt=0, le=MAX_TOKENS)
    messages: list[MessageIn] = Field(min_length=1)
    system: str | list[Block] | None = None
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoiceIn | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    stop_sequences: list[str] | None = None
    stream: bool = False
    metadata: Metadata | None = None
    thinking: dict[str, Any] | None = None
    service_tier: str | None = None


class CountTokensRequest(ProtocolBody):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "model": "sonnet",
                    "messages": [{"role": "user", "content": "What is a vector index?"}],
                }
            ]
        },
    )

    model: str = Field(examples=["sonnet"])
    messages: list[MessageIn] = Field(min_length=1)
    system: str | list[Block] | None = None
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoiceIn | None = None
    thinking: dict[str, Any] | None = None


def to_request(body: MessagesRequest | CountTokensRequest) -> Request:
    if body.thinking is not None:
        raise invalid("thinking", "extended thinking is not supported")
    if isinstance(body, MessagesRequest) and body.top_k is not None:
        raise invalid("top_k", "top_k sampling is not supported")
    system, system_cache = _system(body.system)
    turns: list[Message] = []
    for index, message in enumerate(body.messages):
        turns += _turns(message, f"messages[{index}]")
    if not turns or turns[-1].role not in ("user", "tool"):
        raise invalid("messages", "the last message must come from the user")
    params = (
        SamplingParams(
            temperature=body.temperature,
            top_p=body.top_p,
            max_tokens=body.max_tokens,
            stop=tuple(body.stop_sequences or ()),
        )
        if isinstance(body, MessagesRequest)
        else SamplingParams()
    )
    return Request(
        messages=tuple(turns),
        model=body.model,
        system=system,
        system_cache=system_cache,
        params=params,
        task_type="chat",
        tools=tuple(
            ToolSpec(name=t.name, description=t.description, parameters=t.input_schema)
            for t in body.tools or ()
        ),
        tool_choice=_choice(body.tool_choice),
    )


def _system(system: str | list[Block] | None) -> tuple[str | None, CacheControl | None]:
    if system is None or isinstance(system, str):
        return system, None
    texts, cache = [], None
    for index, block in enumerate(system):
        if block.type != "text" or block.text is None:
            raise invalid(f"system[{index}].type", "system blocks must be text")
        texts.append(block.text)
        if block.cache_control is not None:
            cache = CacheControl(ttl=block.cache_control.ttl)
    return "\n\n".join(texts), cache


def _turns(message: MessageIn, where: str) -> list[Message]:
    """One Anthropic message as Helios turns: tool results are ``tool`` turns of their own,
    before whatever text the same user message adds."""
    if isinstance(message.content, str):
        return [Message(role=message.role, content=message.content)]
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    cache: CacheControl | None = None
    for index, block in enumerate(message.content):
        at = f"{where}.content[{index}]"
        if block.cache_control is not None:
            cache = CacheControl(ttl=block.cache_control.ttl)
        if block.type == "text" and block.text is not None:
            texts.append(block.text)
        elif block.type == "tool_use" and message.role == "assistant":
            if not block.id or not block.name:
                raise invalid(at, "a tool_use block needs its id and name")
            calls.append(
                ToolCall(id=block.id, name=block.name, arguments=json.dumps(block.input or {}))
            )
        elif block.type == "tool_result" and message.role == "user":
            if not block.tool_use_id:
                raise invalid(f"{at}.tool_use_id", "a tool_result names the tool_use it answers")
            results.append(
                Message(
                    role="tool",
                    content=_result_text(block.content, at),
                    tool_call_id=block.tool_use_id,
                )
            )
        else:
            raise invalid(
                f"{at}.type", f"'{block.type}' blocks are not supported in a {message.role} message"
            )
    turns = list(results)
    text = "".join(texts)
    if text or calls or not results:
        turns.append(Message(role=message.role, content=text, tool_calls=tuple(calls), cache=cache))
    return turns


def _result_text(content: str | list[dict[str, Any]] | None, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for index, part in enumerate(content):
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise invalid(f"{where}.content[{index}]", "tool results may hold text blocks only")
        texts.append(part["text"])
    return "".join(texts)


def _choice(choice: ToolChoiceIn | None) -> ToolChoice | None:
    if choice is None:
        return None
    if choice.type == "tool":
        if not choice.name:
            raise invalid("tool_choice.name", "required when type is tool")
        return ToolChoice(mode="tool", name=choice.name)
    return ToolChoice(mode={"auto": "auto", "any": "required", "none": "none"}[choice.type])


# -- out ------------------------------------------------------------------------------------
def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }


def _arguments(call: ToolCall) -> Any:
    try:
        return json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return {"_raw": call.arguments}  # a model that wrote broken JSON: keep what it wrote


def message_body(call_id: str, completion: Completion) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if completion.text:
        content.append({"type": "text", "text": completion.text})
    content += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": _arguments(c)}
        for c in completion.tool_calls
    ]
    return {
        "id": f"msg_{call_id}",
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": content,
        "stop_reason": _STOP.get(completion.finish_reason, "end_turn"),
        "stop_sequence": None,
        "usage": _usage(completion.usage),
    }


def _event(kind: str, payload: dict[str, Any]) -> str:
    return (
        f"event: {kind}\ndata: {json.dumps({'type': kind, **payload}, separators=(',', ':'))}\n\n"
    )


async def sse_events(call_id: str, model: str, chunks: AsyncIterator[Chunk]) -> AsyncIterator[str]:
    """The Messages event stream; a failure after the first byte becomes an ``error``
    event (the SDK raises it) and ends the stream."""
    start: dict[str, Any] = {
        "id": f"msg_{call_id}", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": _usage(Usage()),
    }  # fmt: skip
    yield _event("message_start", {"message": start})
    blocks = _Blocks()
    usage, stop = Usage(), "end_turn"
    try:
        async for chunk in chunks:
            if chunk.text:
                for event in blocks.text(chunk.text):
                    yield event
            for delta in chunk.tool_calls:
                for event in blocks.tool(delta.index, delta.id, delta.name, delta.arguments):
                    yield event
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.finish_reason is not None:
                stop = _STOP.get(chunk.finish_reason, "end_turn")
    except GatewayError as error:
        yield _event("error", {"error": error_object(error)})
        return
    for event in blocks.close():
        yield event
    yield _event(
        "message_delta",
        {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": _usage(usage)},
    )
    yield _event("message_stop", {})


class _Blocks:
    """Content blocks as they open and close: one text block at a time, one per tool call."""

    def __init__(self) -> None:
        self.count = 0
        self.open: int | None = None
        self.kind: str | None = None
        self.tools: dict[int, int] = {}  # tool-call index -> block index

    def _close(self) -> list[str]:
        if self.open is None:
            return []
        index, self.open, self.kind = self.open, None, None
        return [_event("content_block_stop", {"index": index})]

    def text(self, text: str) -> list[str]:
        events = []
        if self.kind != "text":
            events += self._close()
            self.open, self.kind = self.count, "text"
            self.count += 1
            block = {"type": "text", "text": ""}
            events.append(
                _event("content_block_start", {"index": self.open, "content_block": block})
            )
        delta = {"type": "text_delta", "text": text}
        events.append(_event("content_block_delta", {"index": self.open, "delta": delta}))
        return events

    def tool(self, index: int, call_id: str | None, name: str | None, arguments: str) -> list[str]:
        events = []
        if index not in self.tools:
            events += self._close()
            self.tools[index] = self.open = self.count
            self.kind = "tool_use"
            self.count += 1
            block = {
                "type": "tool_use",
                "id": call_id or f"toolu_{index}",
                "name": name or "",
                "input": {},
            }
            events.append(
                _event("content_block_start", {"index": self.open, "content_block": block})
            )
        if arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            events.append(
                _event("content_block_delta", {"index": self.tools[index], "delta": delta})
            )
        return events

    def close(self) -> list[str]:
        return self._close()


_ERROR_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "rate_limit": "rate_limit_error",
    "budget": "rate_limit_error",
    "upstream": "api_error",
    "overloaded": "overloaded_error",
    "timeout": "api_error",
    "internal": "api_error",
}


def error_object(error: GatewayError) -> dict[str, Any]:
    return {"type": _ERROR_TYPES[error.kind], "message": error.message}


def error_body(error: GatewayError) -> dict[str, Any]:
    return {"type": "error", "error": error_object(error)}
