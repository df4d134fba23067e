"""Anthropic Messages API through the official ``anthropic`` SDK (async client).

- Prompt caching: ``Request.system_cache`` and ``Message.cache`` become ``cache_control``
  breakpoints (``{"type": "ephemeral", "ttl": "5m" | "1h"}``) on the block they mark (a
  turn's last block: its last ``tool_use`` or its ``tool_result``).
- Tools: ``tools`` (``name``, ``description``, ``input_schema``) and ``tool_choice``
  (``auto``, ``any`` for required, ``tool`` for a named one, ``none``), sent only with
  tools. An assistant turn's calls are ``tool_use`` blocks; tool results are
  ``tool_result`` blocks in a user turn, and consecutive tool results (with any user text
  right after them) share one user turn, because the API wants user and assistant turns
  to alternate. Streamed calls arrive as a ``tool_use`` ``content_block_start`` (id,
  name) and ``input_json_delta`` pieces; stop reason ``tool_use`` is ``tool_calls``.
- ``max_tokens`` is required by the API; a request that leaves it unset gets
  :data:`DEFAULT_MAX_TOKENS`.
- ``temperature`` and ``top_p``: SDK 2.x no longer declares them, so they travel in
  ``extra_body``, and only when the request sets them. A model that refuses them answers
  with a 400, which surfaces as :class:`~helios.errors.BadRequest`.
- ``Request.response_schema`` is not enforced: the Messages API has no JSON mode, so the
  schema reaches the model only as the persona's prompt describes it.
- Retries are Helios's (:mod:`helios.providers.retry`), not the SDK's: the SDK would
  sleep for any ``retry-after`` the server sends, however long.
- Calls go through the SDK's generic ``client.post("/v1/messages", cast_to=object)`` with
  its aiohttp transport, as the OpenAI adapter does and for the same reason (see
  :mod:`helios.providers.openai`): the typed layer cost more CPU than the rest of a
  gateway call. Replies and stream events are read here as JSON; a reply of the wrong
  shape is a :class:`~helios.errors.ProviderUnavailable` ("unusable response").
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from helios.config.settings import Settings
from helios.errors import (
    AuthenticationError,
    BadRequest,
    MissingDependency,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    error_for_status,
)
from helios.messages import (
    Chunk,
    Completion,
    FinishReason,
    Message,
    Request,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from helios.providers.base import Provider, StreamAssembler
from helios.providers.retry import parse_retry_after, with_retries
from helios.providers.transport import refused_connection

try:
    import anthropic
    import httpx2
    from anthropic.types import (
        CacheControlEphemeralParam,
        ContentBlockParam,
        MessageParam,
        TextBlockParam,
        ToolChoiceParam,
        ToolParam,
        ToolResultBlockParam,
        ToolUseBlockParam,
    )
except ImportError as exc:
    raise MissingDependency("anthropic", "anthropic", "The Anthropic provider") from exc

DEFAULT_MAX_TOKENS = 4096
"""Output cap when a request sets none: room for a long answer, below every model's limit."""

MESSAGES_PATH = "/v1/messages"

# The SDK raises its own errors, plus bare httpx2 transport errors when a stream breaks.
_SDK_ERRORS = (anthropic.AnthropicError, httpx2.HTTPError)
_MALFORMED = (KeyError, TypeError, IndexError, AttributeError)
"""What reading a reply of the wrong shape raises (the SDK's typed models would not)."""

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
}

# An error event inside a 200 stream has no HTTP status of its own; its type tells which.
_STATUS_OF_ERROR_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def create(name: str, model: str, settings: Settings) -> Provider:
    """Build the provider from ``settings.providers[name]``; the key is checked here."""
    config = settings.provider(name)
    key = config.key(name)
    if key is None:
        raise AuthenticationError(config.missing_key_message(name), provider=name, model=model)
    client = anthropic.AsyncAnthropic(
        api_key=key,
        base_url=config.base_url,
        timeout=config.timeout_s,
        max_retries=0,  # Helios retries (RetryingProvider): the SDK's wait is uncapped
        default_headers=config.headers or None,
        # The SDK's aiohttp transport (the `aiohttp` extra): less CPU per call than httpx2.
        http_client=anthropic.DefaultAioHttpClient(timeout=config.timeout_s),
    )
    return with_retries(AnthropicProvider(name, model, client), config)


class AnthropicProvider(Provider):
    def __init__(
        self,
        name: str,
        model: str,
        client: anthropic.AsyncAnthropic,
        *,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.name = name
        self.model = model
        self.default_max_tokens = default_max_tokens
        self._client = client

    async def complete(self, request: Request) -> Completion:
        body = self._body(request, stream=False)
        try:
            message = await self._client.post(MESSAGES_PATH, cast_to=object, body=body)
            return self._completion(message)
        except _SDK_ERRORS as exc:
            raise self._translate(exc) from exc
        except _MALFORMED as exc:
            raise self._unusable(exc) from exc

    def _completion(self, message: object) -> Completion:
        blocks = _field(message, "content") or []
        return Completion(
            text="".join(block["text"] for block in blocks if block["type"] == "text"),
            usage=_usage(_field(message, "usage")),
            model=self.model,
            provider=self.name,
            finish_reason=_finish(_field(message, "stop_reason")),
            tool_calls=tuple(
                ToolCall(id=block["id"], name=block["name"], arguments=json.dumps(block["input"]))
                for block in blocks
                if block["type"] == "tool_use"
            ),
        )

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        body = self._body(request, stream=True)
        try:
            events = await self._client.post(
                MESSAGES_PATH,
                cast_to=object,
                body=body,
                stream=True,
                stream_cls=anthropic.AsyncStream[object],
            )
        except _SDK_ERRORS as exc:
            raise self._translate(exc) from exc
        assembler = StreamAssembler(self.name, self.model)
        blocks = _BlockChunks()
        usage = Usage()
        finish: FinishReason | None = None
        async with events:
            try:
                async for raw in events:
                    event = _object(raw)
                    kind = event.get("type")
                    if kind == "message_start":
                        usage = _usage(event["message"]["usage"])
                    elif kind == "message_delta":
                        usage = _with_delta(usage, event["usage"])
                        finish = _finish(event["delta"].get("stop_reason"))
                    for chunk in blocks.chunks(kind, event):
                        assembler.add(chunk)
                        yield chunk
            except (*_SDK_ERRORS, *_MALFORMED) as exc:
                if assembler.parts or assembler.tool_deltas:
                    raise assembler.broken(exc) from exc
                if isinstance(exc, _SDK_ERRORS):
                    raise self._translate(exc) from exc
                raise self._unusable(exc) from exc
        if finish is None:
            # A connection closed cleanly before message_delta still lost the reply's end.
            raise assembler.broken(EOFError("the stream ended before its stop reason"))
        yield Chunk(usage=usage, finish_reason=finish)

    def _body(self, request: Request, *, stream: bool) -> dict[str, object]:
        """The ``/v1/messages`` body; only the fields this request sets."""
        params = request.params
        body: dict[str, object] = {
            "model": self.model,
            "max_tokens": params.max_tokens or self.default_max_tokens,
            "messages": _messages(request),
        }
        optional: dict[str, object] = {
            "system": _system(request),
            "stop_sequences": list(params.stop) or None,
            "tools": _tools(request),
            "tool_choice": _tool_choice(request),
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        body.update((key, value) for key, value in optional.items() if value is not None)
        if stream:
            body["stream"] = True
        return body

    def _unusable(self, exc: Exception) -> ProviderError:
        return ProviderUnavailable(
            f"unusable response: {type(exc).__name__}: {exc}",
            provider=self.name,
            model=self.model,
        )

    def _translate(self, exc: Exception) -> ProviderError:
        """The Helios error for an SDK or transport error: the one place that decides."""
        name, model = self.name, self.model
        if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
            if (refused := refused_connection(exc)) is not None:
                return ProviderUnavailable(
                    f"connection failed: {refused}", provider=name, model=model
                )
            return ProviderTimeout(f"no answer in time: {exc}", provider=name, model=model)
        if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
            return ProviderUnavailable(f"connection failed: {exc}", provider=name, model=model)
        if not isinstance(exc, anthropic.APIStatusError):
            return ProviderUnavailable(f"unusable response: {exc}", provider=name, model=model)
        status = exc.status_code
        if status < 400:
            status = _STATUS_OF_ERROR_TYPE.get(exc.type or "", 500)
        message = exc.api_message or exc.message
        retry_after = parse_retry_after(exc.response.headers) if status == 429 else None
        return error_for_status(
            status, message, provider=name, model=model, retry_after=retry_after
        )

    async def aclose(self) -> None:
        await self._client.close()


def _object(payload: object) -> dict[str, Any]:
    """A JSON object from the wire, or the TypeError that makes it an unusable response."""
    if not isinstance(payload, dict):
        raise TypeError(f"expected a JSON object, got {type(payload).__name__}")
    return payload


def _field(payload: object, key: str) -> Any:
    """``payload[key]`` of a JSON object from the wire (``None`` when absent)."""
    return _object(payload).get(key)


def _cache_control(ttl: str) -> CacheControlEphemeralParam:
    return {"type": "ephemeral", "ttl": "1h" if ttl == "1h" else "5m"}


def _system(request: Request) -> str | list[TextBlockParam] | None:
    if request.system is None:
        return None
    if request.system_cache is None:
        return request.system
    block: TextBlockParam = {
        "type": "text",
        "text": request.system,
        "cache_control": _cache_control(request.system_cache.ttl),
    }
    return [block]


class _BlockChunks:
    """Turns stream events into chunks: text deltas, and each ``tool_use`` block's start
    and ``input_json_delta`` pieces as the deltas of one call, numbered in order."""

    def __init__(self) -> None:
        self._call_of_block: dict[int, int] = {}
        self._without_input: set[int] = set()

    def chunks(self, kind: object, event: dict[str, Any]) -> Iterator[Chunk]:
        if kind == "content_block_start":
            block = event["content_block"]
            if block["type"] == "tool_use":
                index = self._call_of_block[event["index"]] = len(self._call_of_block)
                self._without_input.add(index)
                start = ToolCallDelta(index=index, id=block["id"], name=block["name"])
                yield Chunk(tool_calls=(start,))
        elif kind == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta" and delta["text"]:
                yield Chunk(text=delta["text"])
            elif delta["type"] == "input_json_delta" and event["index"] in self._call_of_block:
                index = self._call_of_block[event["index"]]
                if delta["partial_json"]:
                    self._without_input.discard(index)
                    piece = ToolCallDelta(index=index, arguments=delta["partial_json"])
                    yield Chunk(tool_calls=(piece,))
        elif kind == "content_block_stop":
            index = self._call_of_block.get(event["index"], -1)
            if index in self._without_input:
                # A call without arguments streams no JSON at all; its arguments are {}.
                self._without_input.discard(index)
                yield Chunk(tool_calls=(ToolCallDelta(index=index, arguments="{}"),))


def _tools(request: Request) -> list[ToolParam] | None:
    if not request.tools:
        return None
    tools: list[ToolParam] = []
    for tool in request.tools:
        param: ToolParam = {"name": tool.name, "input_schema": tool.parameters}
        if tool.description:
            param["description"] = tool.description
        tools.append(param)
    return tools


def _tool_choice(request: Request) -> ToolChoiceParam | None:
    choice = request.tool_choice
    if choice is None or not request.tools:
        return None
    if choice.mode == "tool":
        assert choice.name is not None  # ToolChoice guarantees a name for mode "tool"
        return {"type": "tool", "name": choice.name}
    if choice.mode == "required":
        return {"type": "any"}
    return {"type": "none"} if choice.mode == "none" else {"type": "auto"}


def _messages(request: Request) -> list[MessageParam]:
    turns: list[MessageParam] = []
    after_tool_result = False
    for message in request.messages:
        if message.role == "assistant":
            turns.append({"role": "assistant", "content": _assistant_content(message)})
        elif after_tool_result:
            # Results and the user text after them go in the user turn already open.
            previous = turns[-1]["content"]
            assert isinstance(previous, list)
            previous.extend(_user_blocks(message))
        elif message.role == "tool" or message.cache is not None:
            turns.append({"role": "user", "content": _user_blocks(message)})
        else:
            turns.append({"role": "user", "content": message.content})
        after_tool_result = message.role == "tool"
    return turns


def _user_blocks(message: Message) -> list[ContentBlockParam]:
    cache = _cache_control(message.cache.ttl) if message.cache is not None else None
    if message.role == "tool":
        assert message.tool_call_id is not None  # Message guarantees one on a tool turn
        result: ToolResultBlockParam = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id,
            "content": message.content,
        }
        if cache is not None:
            result["cache_control"] = cache
        return [result]
    text: TextBlockParam = {"type": "text", "text": message.content}
    if cache is not None:
        text["cache_control"] = cache
    return [text]


def _assistant_content(message: Message) -> str | list[ContentBlockParam]:
    if not message.tool_calls and message.cache is None:
        return message.content
    # The breakpoint goes on the turn's last block, which ends the cached prefix.
    cache = _cache_control(message.cache.ttl) if message.cache is not None else None
    blocks: list[ContentBlockParam] = []
    if message.content or not message.tool_calls:
        text: TextBlockParam = {"type": "text", "text": message.content}
        if cache is not None and not message.tool_calls:
            text["cache_control"] = cache
        blocks.append(text)
    for number, call in enumerate(message.tool_calls, start=1):
        use: ToolUseBlockParam = {
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "input": _input(call),
        }
        if cache is not None and number == len(message.tool_calls):
            use["cache_control"] = cache
        blocks.append(use)
    return blocks


def _input(call: ToolCall) -> dict[str, object]:
    """A call's arguments as the ``input`` object the API wants back."""
    try:
        arguments = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise BadRequest(
            f"tool call {call.id} ({call.name}): its arguments are not a JSON object, "
            "which Anthropic needs as the tool_use input"
        )
    return arguments


def _finish(reason: str | None) -> FinishReason:
    return _FINISH.get(reason or "", "other")


def _usage(usage: Any) -> Usage:
    written = usage.get("cache_creation_input_tokens") or 0
    split = usage.get("cache_creation") or {}
    write_5m = split.get("ephemeral_5m_input_tokens") or 0
    write_1h = split.get("ephemeral_1h_input_tokens") or 0
    if not write_5m + write_1h:
        # Without the TTL breakdown every write is billed as the default 5-minute one.
        write_5m, write_1h = written, 0
    return Usage(
        input_tokens=usage["input_tokens"],
        output_tokens=usage["output_tokens"],
        cache_read_tokens=usage.get("cache_read_input_tokens") or 0,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
    )


def _with_delta(usage: Usage, delta: Any) -> Usage:
    """``message_delta`` counts are cumulative: they replace, never add to, the start's."""
    update: dict[str, int] = {"output_tokens": delta["output_tokens"]}
    if (input_tokens := delta.get("input_tokens")) is not None:
        update["input_tokens"] = input_tokens
    if (read := delta.get("cache_read_input_tokens")) is not None:
        update["cache_read_tokens"] = read
    written = delta.get("cache_creation_input_tokens")
    if written is not None and written != usage.cache_write_tokens:
        # The delta has no TTL breakdown; a changed total can only be attributed to 5m.
        update["cache_write_5m_tokens"] = max(written - usage.cache_write_1h_tokens, 0)
    return usage.model_copy(update=update)
