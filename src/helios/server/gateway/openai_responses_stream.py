"""The Responses API's event stream for one streamed reply.

``response.created`` and ``response.in_progress``; then each output item opens as its
first piece arrives (the assistant message: ``output_item.added``, ``content_part.added``,
``output_text.delta`` …; a function call: ``output_item.added``,
``function_call_arguments.delta`` …) and closes, in order, when the text turns to tool
calls or the reply ends (``…done``); last ``response.completed`` (``response.incomplete``
when the length limit cut it) with the usage. Every event has its sequence number.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from helios.messages import Chunk, ToolCall, Usage
from helios.server.gateway.errors import GatewayError
from helios.server.gateway.openai_chat import error_object
from helios.server.gateway.openai_responses import (
    ResponsesRequest,
    call_item,
    envelope,
    message_item,
    usage_body,
)


async def sse_events(
    call_id: str, body: ResponsesRequest, chunks: AsyncIterator[Chunk]
) -> AsyncIterator[str]:
    """The typed event stream; a failure after the first byte becomes an ``error`` event."""
    stream = _EventStream(call_id, body)
    yield stream.event("response.created", response=stream.envelope("in_progress"))
    yield stream.event("response.in_progress", response=stream.envelope("in_progress"))
    try:
        async for chunk in chunks:
            for event in stream.add(chunk):
                yield event
    except GatewayError as error:
        yield stream.event("error", **error_object(error))
        return
    for event in stream.finish():
        yield event


class _EventStream:
    """The Responses event sequence for one streamed reply: items open as their first
    piece arrives and close, in order, when the text turns to tool calls or the reply ends."""

    def __init__(self, call_id: str, body: ResponsesRequest) -> None:
        self.call_id = call_id
        self.body = body
        self.model = body.model
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.text: list[str] = []
        self.message_index: int | None = None
        self.message_open = False
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage = Usage()
        self.finish_reason = "stop"

    def event(self, kind: str, **fields: Any) -> str:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"

    def envelope(self, status: str) -> dict[str, Any]:
        return envelope(self.call_id, self.body, self.model, status, list(self.output))

    def add(self, chunk: Chunk) -> list[str]:
        events: list[str] = []
        if chunk.model is not None:
            self.model = chunk.model
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.text:
            if self.message_index is None:
                events += self._open_message()
            self.text.append(chunk.text)
            events.append(
                self.event(
                    "response.output_text.delta",
                    item_id=f"msg_{self.call_id}",
                    output_index=self.message_index,
                    content_index=0,
                    delta=chunk.text,
                    logprobs=[],
                )
            )
        for delta in chunk.tool_calls:
            events += self._close_message()
            events += self._tool_delta(delta.index, delta.id, delta.name, delta.arguments)
        return events

    def _open_message(self) -> list[str]:
        self.message_index = len(self.output)
        self.message_open = True
        item = message_item(self.call_id, "", status="in_progress")
        item["content"] = []
        self.output.append(item)
        part = {"type": "output_text", "text": "", "annotations": []}
        return [
            self.event("response.output_item.added", output_index=self.message_index, item=item),
            self.event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=self.message_index,
                content_index=0,
                part=part,
            ),
        ]

    def _close_message(self) -> list[str]:
        if not self.message_open or self.message_index is None:
            return []
        self.message_open = False
        text = "".join(self.text)
        item = message_item(self.call_id, text)
        self.output[self.message_index] = item
        index = self.message_index
        part = item["content"][0]
        return [
            self.event(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=text,
                logprobs=[],
            ),
            self.event(
                "response.content_part.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            ),
            self.event("response.output_item.done", output_index=index, item=item),
        ]

    def _tool_delta(
        self, index: int, call: str | None, name: str | None, arguments: str
    ) -> list[str]:
        events = []
        state = self.calls.get(index)
        if state is None:
            state = {
                "output_index": len(self.output),
                "call_id": call or f"call_{index}",
                "name": name or "",
                "arguments": "",
            }
            self.calls[index] = state
            item = call_item(self.call_id, index, self._call(state), "in_progress")
            self.output.append(item)
            events.append(
                self.event(
                    "response.output_item.added", output_index=state["output_index"], item=item
                )
            )
        if name:
            state["name"] = name
        if arguments:
            state["arguments"] += arguments
            events.append(
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=f"fc_{self.call_id}_{index}",
                    output_index=state["output_index"],
                    delta=arguments,
                )
            )
        return events

    @staticmethod
    def _call(state: dict[str, Any]) -> ToolCall:
        return ToolCall(id=state["call_id"], name=state["name"], arguments=state["arguments"])

    def finish(self) -> list[str]:
        events = self._close_message()
        for index, state in sorted(self.calls.items()):
            item = call_item(self.call_id, index, self._call(state), "completed")
            self.output[state["output_index"]] = item
            events.append(
                self.event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=state["output_index"],
                    arguments=state["arguments"],
                    name=state["name"],
                )
            )
            events.append(
                self.event(
                    "response.output_item.done", output_index=state["output_index"], item=item
                )
            )
        if not self.output:  # an empty reply is still one (empty) message
            events += self._open_message()
            events += self._close_message()
        status = "incomplete" if self.finish_reason == "length" else "completed"
        envelope = self.envelope(status)
        envelope["usage"] = usage_body(self.usage)
        if status == "incomplete":
            envelope["incomplete_details"] = {"reason": "max_output_tokens"}
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        events.append(self.event(kind, response=envelope))
        return events
