"""OpenAI Chat Completions, as the official ``openai`` SDK speaks it, to and from Helios.

In: ``model`` (a catalogue id, an alias, ``provider:model`` or ``auto``), ``messages``
(``system``/``developer`` turns become the system prompt; text content, plain or as text
parts; assistant ``tool_calls``; ``tool`` results), ``tools``/``tool_choice`` (function
tools), ``response_format`` (``json_schema``; ``json_object`` as an open object schema),
``temperature``, ``top_p``, ``max_tokens``/``max_completion_tokens``, ``stop``, ``seed``,
``user`` (the end user, kept in the ledger), ``stream`` and ``stream_options``. Fields the
API has that change nothing here (``parallel_tool_calls``, ``store``, ``metadata``, ...) are
accepted; a field that would change the answer in a way Helios cannot honour (``n > 1``,
``logprobs``, image parts) is a 400 naming it.

Out: a ``chat.completion`` object, or ``chat.completion.chunk`` events ending in
``data: [DONE]``; with ``stream_options.include_usage`` a last chunk carries the usage.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from helios.messages import (
    TOOL_NAME_PATTERN,
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

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}


class FunctionCall(ProtocolBody):
    name: str
    arguments: str = ""


class ToolCallIn(ProtocolBody):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(BaseModel):
    """Any content part; only text parts are served (checked when translating, so that the
    400 names the part's type rather than a union's first mismatch)."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(ProtocolBody):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None


class FunctionSpec(ProtocolBody):
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None


class ToolIn(ProtocolBody):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(ProtocolBody):
    name: str = Field(pattern=TOOL_NAME_PATTERN)


class NamedTool(ProtocolBody):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(ProtocolBody):
    name: str
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(ProtocolBody):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(ProtocolBody):
    include_usage: bool = False
    include_obfuscation: bool | None = None


class ChatRequest(ProtocolBody):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "model": "auto",
                    "messages": [{"role": "user", "content": "What is a vector index?"}],
                }
            ]
        },
    )

    model: str = Field(examples=["auto"])
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolIn] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedTool | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, gt=0, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(default=None, gt=0, le=MAX_TOKENS)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)
    user: str | None = Field(default=None, max_length=256)
    n: int | None = Field(default=None, ge=1, le=128)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # accepted, and changing nothing here
    parallel_tool_calls: bool | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    cache: Any = None
    """LiteLLM's cache controls (see :mod:`helios.server.gateway.cache_control`)."""


def to_request(body: ChatRequest) -> Request:
    """The Helios request; a 400 naming the field for what cannot be honoured."""
    if body.n is not None and body.n > 1:
        raise invalid("n", "only one choice per request is supported")
    if body.logprobs:
        raise invalid("logprobs", "log probabilities are not supported")
    system: list[str] = []
    turns: list[Message] = []
    for index, message in enumerate(body.messages):
        where = f"messages[{index}]"
        text = _text(message.content, f"{where}.content")
        if message.role in ("system", "developer"):
            system.append(text)
        elif message.role == "tool":
            if not message.tool_call_id:
                raise invalid(f"{where}.tool_call_id", "a tool message names the call it answers")
            turns.append(Message(role="tool", content=text, tool_call_id=message.tool_call_id))
        elif message.role == "assistant":
            calls = tuple(
                ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
                for call in message.tool_calls or ()
            )
            turns.append(Message(role="assistant", content=text, tool_calls=calls))
        else:
            turns.append(Message(role="user", content=text))
    if not turns or turns[-1].role not in ("user", "tool"):
        raise invalid("messages", "the last message must be a user or tool message")
    max_tokens = body.max_completion_tokens or body.max_tokens
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    return Request(
        messages=tuple(turns),
        model=body.model,
        system="\n\n".join(system) if system else None,
        params=SamplingParams(
            temperature=body.temperature,
            top_p=body.top_p,
            max_tokens=max_tokens,
            stop=stop,
            seed=body.seed,
        ),
        task_type="chat",
        response_schema=_schema(body.response_format),
        tools=tuple(
            ToolSpec(
                name=t.function.name,
                description=t.function.description,
                parameters=t.function.parameters,
            )
            for t in body.tools or ()
        ),
        tool_choice=_choice(body.tool_choice),
    )


def _text(content: str | list[ContentPart] | None, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for index, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise invalid(f"{where}[{index}].type", f"'{part.type}' parts are not supported")
        texts.append(part.text)
    return "".join(texts)


def _schema(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return {"type": "object"}
    if response_format.json_schema is None:
        raise invalid("response_format.json_schema", "required when type is json_schema")
    return response_format.json_schema.schema_


def _choice(choice: Literal["none", "auto", "required"] | NamedTool | None) -> ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, NamedTool):
        return ToolChoice(mode="tool", name=choice.function.name)
    return ToolChoice(mode=choice)


# -- out ------------------------------------------------------------------------------------
def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.total_input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    }


def completion_body(call_id: str, completion: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.text or None}
    if completion.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in completion.tool_calls
        ]
    elif message["content"] is None:
        message["content"] = ""
    return {
        "id": f"chatcmpl-{call_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _FINISH.get(completion.finish_reason, "stop"),
                "logprobs": None,
            }
        ],
        "usage": _usage(completion.usage),
    }


async def sse_events(
    call_id: str, model: str, chunks: AsyncIterator[Chunk], *, include_usage: bool
) -> AsyncIterator[str]:
    """``data:`` lines of ``chat.completion.chunk`` events, then ``[DONE]``; a failure after
    the first byte becomes an ``error`` event (the SDK raises it) and ends the stream."""
    created = int(time.time())
    base = {"id": f"chatcmpl-{call_id}", "object": "chat.completion.chunk", "created": created}
    answered = model

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        payload = {**base, "model": answered, "choices": choices, **extra}
        return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"

    yield event(
        [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    )
    usage: Usage | None = None
    finish = "stop"
    try:
        async for chunk in chunks:
            if chunk.model is not None:
                answered = chunk.model
            delta: dict[str, Any] = {}
            if chunk.text:
                delta["content"] = chunk.text
            if chunk.tool_calls:
                delta["tool_calls"] = [_tool_delta(d) for d in chunk.tool_calls]
            if delta:
                yield event([{"index": 0, "delta": delta, "finish_reason": None}])
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.finish_reason is not None:
                finish = _FINISH.get(chunk.finish_reason, "stop")
    except GatewayError as error:
        yield f"data: {json.dumps({'error': error_object(error)})}\n\n"
        return
    yield event([{"index": 0, "delta": {}, "finish_reason": finish}])
    if include_usage:
        yield event([], usage=_usage(usage or Usage()))
    yield "data: [DONE]\n\n"


def _tool_delta(delta: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"index": delta.index, "function": {"arguments": delta.arguments}}
    if delta.id is not None:
        out["id"] = delta.id
        out["type"] = "function"
    if delta.name is not None:
        out["function"]["name"] = delta.name
    return out


_ERROR_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "rate_limit": "rate_limit_error",
    "budget": "rate_limit_error",
    "upstream": "api_error",
    "overloaded": "api_error",
    "timeout": "timeout_error",
    "internal": "api_error",
}


def error_object(error: GatewayError) -> dict[str, Any]:
    """OpenAI's error object: ``{"message", "type", "param", "code"}``."""
    return {
        "message": error.message,
        "type": _ERROR_TYPES[error.kind],
        "param": error.param,
        "code": "budget_exceeded" if error.kind == "budget" else None,
    }
