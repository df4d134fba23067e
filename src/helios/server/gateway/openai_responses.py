"""OpenAI's Responses API (``POST /v1/responses``), text and function tools, to and from Helios.

In: ``model``, ``input`` (a string, or items: messages with text content, ``function_call``
and ``function_call_output`` items), ``instructions`` (the system prompt), function
``tools`` and ``tool_choice``, ``text.format`` (``json_schema`` / ``json_object``),
``temperature``, ``top_p``, ``max_output_tokens``, ``user``, ``stream``. Each request is
whole: ``previous_response_id`` (server-kept conversations) is refused, as are non-function
tools and non-text input parts; ``store``, ``metadata`` and the like change nothing.

Out: a ``response`` object whose ``output`` holds the assistant message and any
``function_call`` items, or its stream of typed events (``response.created`` …
``response.output_text.delta`` … ``response.completed``), each with its sequence number.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from helios.messages import (
    TOOL_NAME_PATTERN,
    Completion,
    Message,
    Request,
    SamplingParams,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Usage,
)
from helios.server.gateway.errors import invalid
from helios.server.gateway.protocol_body import ProtocolBody
from helios.server.limits import MAX_TOKENS


class TextPart(ProtocolBody):
    type: Literal["input_text", "output_text", "text"]
    text: str
    annotations: list[Any] | None = None


class MessageItem(ProtocolBody):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[TextPart]
    id: str | None = None
    status: str | None = None


class FunctionCallItem(ProtocolBody):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str = ""
    id: str | None = None
    status: str | None = None


class FunctionOutputItem(ProtocolBody):
    type: Literal["function_call_output"]
    call_id: str
    output: str
    id: str | None = None
    status: str | None = None


class FunctionTool(ProtocolBody):
    type: Literal["function"]
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None


class NamedFunction(ProtocolBody):
    type: Literal["function"]
    name: str = Field(pattern=TOOL_NAME_PATTERN)


class TextFormat(ProtocolBody):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextOptions(ProtocolBody):
    format: TextFormat | None = None
    verbosity: str | None = None


class ResponsesRequest(ProtocolBody):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"model": "auto", "input": "What is a vector index?"}]},
    )

    model: str = Field(examples=["auto"])
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedFunction | None = None
    text: TextOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_output_tokens: int | None = Field(default=None, gt=0, le=MAX_TOKENS)
    stream: bool = False
    user: str | None = Field(default=None, max_length=256)
    previous_response_id: str | None = None
    # accepted, and changing nothing here
    store: bool | None = None
    metadata: dict[str, str] | None = None
    parallel_tool_calls: bool | None = None
    truncation: str | None = None
    include: list[str] | None = None
    service_tier: str | None = None


def to_request(body: ResponsesRequest) -> Request:
    if body.previous_response_id is not None:
        raise invalid("previous_response_id", "Helios keeps no conversations: send the input whole")
    system = [body.instructions] if body.instructions else []
    turns: list[Message] = []
    items: list[dict[str, Any]] = (
        [{"role": "user", "content": body.input}] if isinstance(body.input, str) else body.input
    )
    for index, raw in enumerate(items):
        where = f"input[{index}]"
        kind = raw.get("type", "message")
        parsed = _item(kind, raw, where)
        if isinstance(parsed, MessageItem):
            text = _text(parsed.content)
            if parsed.role in ("system", "developer"):
                system.append(text)
            else:
                turns.append(Message(role=parsed.role, content=text))
        elif isinstance(parsed, FunctionCallItem):
            call = ToolCall(id=parsed.call_id, name=parsed.name, arguments=parsed.arguments)
            if turns and turns[-1].role == "assistant":
                last = turns.pop()
                turns.append(last.model_copy(update={"tool_calls": (*last.tool_calls, call)}))
            else:
                turns.append(Message(role="assistant", content="", tool_calls=(call,)))
        else:
            turns.append(Message(role="tool", content=parsed.output, tool_call_id=parsed.call_id))
    if not turns or turns[-1].role not in ("user", "tool"):
        raise invalid("input", "the input must end with a user message or a function output")
    return Request(
        messages=tuple(turns),
        model=body.model,
        system="\n\n".join(system) if system else None,
        params=SamplingParams(
            temperature=body.temperature, top_p=body.top_p, max_tokens=body.max_output_tokens
        ),
        task_type="chat",
        response_schema=_schema(body.text),
        tools=_tools(body.tools),
        tool_choice=_choice(body.tool_choice),
    )


def _item(
    kind: object, raw: dict[str, Any], where: str
) -> MessageItem | FunctionCallItem | FunctionOutputItem:
    model: type[MessageItem] | type[FunctionCallItem] | type[FunctionOutputItem]
    if kind == "message":
        model = MessageItem
    elif kind == "function_call":
        model = FunctionCallItem
    elif kind == "function_call_output":
        model = FunctionOutputItem
    else:
        raise invalid(f"{where}.type", f"'{kind}' items are not supported")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise invalid(f"{where}.{field}", first["msg"]) from None


def _text(content: str | list[TextPart]) -> str:
    return content if isinstance(content, str) else "".join(part.text for part in content)


def _tools(tools: list[dict[str, Any]] | None) -> tuple[ToolSpec, ...]:
    specs = []
    for index, raw in enumerate(tools or ()):
        if raw.get("type") != "function":
            raise invalid(f"tools[{index}].type", f"'{raw.get('type')}' tools are not supported")
        try:
            tool = FunctionTool.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise invalid(f"tools[{index}].{first['loc'][0]}", first["msg"]) from None
        specs.append(
            ToolSpec(name=tool.name, description=tool.description or "", parameters=tool.parameters)
        )
    return tuple(specs)


def _choice(
    choice: Literal["none", "auto", "required"] | NamedFunction | None,
) -> ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, NamedFunction):
        return ToolChoice(mode="tool", name=choice.name)
    return ToolChoice(mode=choice)


def _schema(text: TextOptions | None) -> dict[str, Any] | None:
    if text is None or text.format is None or text.format.type == "text":
        return None
    if text.format.type == "json_object":
        return {"type": "object"}
    if text.format.schema_ is None:
        raise invalid("text.format.schema", "required when type is json_schema")
    return text.format.schema_


# -- out ------------------------------------------------------------------------------------
def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.total_input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def message_item(call_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}] if status else []
    return {
        "type": "message",
        "id": f"msg_{call_id}",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def call_item(call_id: str, index: int, call: ToolCall, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}_{index}",
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def envelope(
    call_id: str, body: ResponsesRequest, model: str, status: str, output: list[dict[str, Any]]
) -> dict[str, Any]:
    tools = [
        {
            "type": "function",
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters,
            "strict": False,
        }
        for t in _tools(body.tools)
    ]
    choice = body.tool_choice
    return {
        "id": f"resp_{call_id}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": choice.model_dump()
        if isinstance(choice, NamedFunction)
        else choice or "auto",
        "tools": tools,
        "instructions": body.instructions,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "max_output_tokens": body.max_output_tokens,
        "error": None,
        "incomplete_details": None,
        "metadata": body.metadata or {},
    }


def response_body(call_id: str, body: ResponsesRequest, completion: Completion) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if completion.text or not completion.tool_calls:
        output.append(message_item(call_id, completion.text))
    output += [
        call_item(call_id, index, call, "completed")
        for index, call in enumerate(completion.tool_calls)
    ]
    status = "incomplete" if completion.finish_reason == "length" else "completed"
    document = envelope(call_id, body, completion.model, status, output)
    document["usage"] = usage_body(completion.usage)
    if status == "incomplete":
        document["incomplete_details"] = {"reason": "max_output_tokens"}
    return document
