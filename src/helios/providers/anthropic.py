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
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

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

try:
    import anthropic
    import httpx2
    from anthropic.types import (
        CacheControlEphemeralParam,
        ContentBlockParam,
        InputJSONDelta,
        MessageDeltaUsage,
        MessageParam,
        RawContentBlockDeltaEvent,
        RawContentBlockStartEvent,
        RawContentBlockStopEvent,
        RawMessageDeltaEvent,
        RawMessageStartEvent,
        RawMessageStreamEvent,
        StopReason,
        TextBlock,
        TextBlockParam,
        TextDelta,
        ToolChoiceParam,
        ToolParam,
        ToolResultBlockParam,
        ToolUseBlock,
        ToolUseBlockParam,
    )
    from anthropic.types import Usage as AnthropicUsage
except ImportError as exc:
    raise MissingDependency("anthropic", "anthropic", "The Anthropic provider") from exc

DEFAULT_MAX_TOKENS = 4096
"""Output cap when a request sets none: room for a long answer, below every model's limit."""

# The SDK raises its own errors, plus bare httpx2 transport errors when a stream breaks.
_SDK_ERRORS = (anthropic.AnthropicError, httpx2.HTTPError)

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
        params = request.params
        try:
            message = await self._client.messages.create(
                model=self.model,
                max_tokens=params.max_tokens or self.default_max_tokens,
                messages=_messages(request),
                system=_system(request),
                stop_sequences=list(params.stop) or anthropic.omit,
                tools=_tools(request),
                tool_choice=_tool_choice(request),
                extra_body=_sampling(request),
            )
        except _SDK_ERRORS as exc:
            raise self._translate(exc) from exc
        return Completion(
            text="".join(block.text for block in message.content if isinstance(block, TextBlock)),
            usage=_usage(message.usage),
            model=self.model,
            provider=self.name,
            finish_reason=_finish(message.stop_reason),
            tool_calls=tuple(
                ToolCall(id=block.id, name=block.name, arguments=json.dumps(block.input))
                for block in message.content
                if isinstance(block, ToolUseBlock)
            ),
        )

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        params = request.params
        try:
            events = await self._client.messages.create(
                model=self.model,
                max_tokens=params.max_tokens or self.default_max_tokens,
                messages=_messages(request),
                system=_system(request),
                stop_sequences=list(params.stop) or anthropic.omit,
                tools=_tools(request),
                tool_choice=_tool_choice(request),
                extra_body=_sampling(request),
                stream=True,
            )
        except _SDK_ERRORS as exc:
            raise self._translate(exc) from exc
        assembler = StreamAssembler(self.name, self.model)
        blocks = _BlockChunks()
        usage = Usage()
        finish: FinishReason | None = None
        async with events:
            try:
                async for event in events:
                    if isinstance(event, RawMessageStartEvent):
                        usage = _usage(event.message.usage)
                    elif isinstance(event, RawMessageDeltaEvent):
                        usage = _with_delta(usage, event.usage)
                        finish = _finish(event.delta.stop_reason)
                    for chunk in blocks.chunks(event):
                        assembler.add(chunk)
                        yield chunk
            except _SDK_ERRORS as exc:
                if assembler.parts or assembler.tool_deltas:
                    raise assembler.broken(exc) from exc
                raise self._translate(exc) from exc
        if finish is None:
            # A connection closed cleanly before message_delta still lost the reply's end.
            raise assembler.broken(EOFError("the stream ended before its stop reason"))
        yield Chunk(usage=usage, finish_reason=finish)

    def _translate(self, exc: Exception) -> ProviderError:
        """The Helios error for an SDK or transport error: the one place that decides."""
        name, model = self.name, self.model
        if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
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


def _cache_control(ttl: str) -> CacheControlEphemeralParam:
    return {"type": "ephemeral", "ttl": "1h" if ttl == "1h" else "5m"}


def _system(request: Request) -> str | list[TextBlockParam] | anthropic.Omit:
    if request.system is None:
        return anthropic.omit
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

    def chunks(self, event: RawMessageStreamEvent) -> Iterator[Chunk]:
        if isinstance(event, RawContentBlockStartEvent):
            block = event.content_block
            if isinstance(block, ToolUseBlock):
                index = self._call_of_block[event.index] = len(self._call_of_block)
                self._without_input.add(index)
                yield Chunk(tool_calls=(ToolCallDelta(index=index, id=block.id, name=block.name),))
        elif isinstance(event, RawContentBlockDeltaEvent):
            delta = event.delta
            if isinstance(delta, TextDelta) and delta.text:
                yield Chunk(text=delta.text)
            elif isinstance(delta, InputJSONDelta) and event.index in self._call_of_block:
                index = self._call_of_block[event.index]
                if delta.partial_json:
                    self._without_input.discard(index)
                    piece = ToolCallDelta(index=index, arguments=delta.partial_json)
                    yield Chunk(tool_calls=(piece,))
        elif isinstance(event, RawContentBlockStopEvent):
            index = self._call_of_block.get(event.index, -1)
            if index in self._without_input:
                # A call without arguments streams no JSON at all; its arguments are {}.
                self._without_input.discard(index)
                yield Chunk(tool_calls=(ToolCallDelta(index=index, arguments="{}"),))


def _tools(request: Request) -> list[ToolParam] | anthropic.Omit:
    if not request.tools:
        return anthropic.omit
    tools: list[ToolParam] = []
    for tool in request.tools:
        param: ToolParam = {"name": tool.name, "input_schema": tool.parameters}
        if tool.description:
            param["description"] = tool.description
        tools.append(param)
    return tools


def _tool_choice(request: Request) -> ToolChoiceParam | anthropic.Omit:
    choice = request.tool_choice
    if choice is None or not request.tools:
        return anthropic.omit
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


def _sampling(request: Request) -> dict[str, object] | None:
    params = request.params
    body: dict[str, object] = {}
    if params.temperature is not None:
        body["temperature"] = params.temperature
    if params.top_p is not None:
        body["top_p"] = params.top_p
    return body or None


def _finish(reason: StopReason | None) -> FinishReason:
    return _FINISH.get(reason or "", "other")


def _usage(usage: AnthropicUsage) -> Usage:
    written = usage.cache_creation_input_tokens or 0
    split = usage.cache_creation
    if split is not None and split.ephemeral_5m_input_tokens + split.ephemeral_1h_input_tokens:
        write_5m, write_1h = split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens
    else:
        # Without the TTL breakdown every write is billed as the default 5-minute one.
        write_5m, write_1h = written, 0
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
    )


def _with_delta(usage: Usage, delta: MessageDeltaUsage) -> Usage:
    """``message_delta`` counts are cumulative: they replace, never add to, the start's."""
    update: dict[str, int] = {"output_tokens": delta.output_tokens}
    if delta.input_tokens is not None:
        update["input_tokens"] = delta.input_tokens
    if delta.cache_read_input_tokens is not None:
        update["cache_read_tokens"] = delta.cache_read_input_tokens
    written = delta.cache_creation_input_tokens
    if written is not None and written != usage.cache_write_tokens:
        # The delta has no TTL breakdown; a changed total can only be attributed to 5m.
        update["cache_write_5m_tokens"] = max(written - usage.cache_write_1h_tokens, 0)
    return usage.model_copy(update=update)
