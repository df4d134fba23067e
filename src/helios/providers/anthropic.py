"""Anthropic Messages API through the official ``anthropic`` SDK (async client).

- Prompt caching: ``Request.system_cache`` and ``Message.cache`` become ``cache_control``
  breakpoints (``{"type": "ephemeral", "ttl": "5m" | "1h"}``) on the block they mark.
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

from collections.abc import AsyncIterator

from helios.config.settings import Settings
from helios.errors import (
    AuthenticationError,
    MissingDependency,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    error_for_status,
)
from helios.messages import Chunk, Completion, FinishReason, Request, Usage
from helios.providers.base import Provider, StreamAssembler
from helios.providers.retry import parse_retry_after, with_retries

try:
    import anthropic
    import httpx2
    from anthropic.types import (
        CacheControlEphemeralParam,
        MessageDeltaUsage,
        MessageParam,
        RawContentBlockDeltaEvent,
        RawMessageDeltaEvent,
        RawMessageStartEvent,
        StopReason,
        TextBlock,
        TextBlockParam,
        TextDelta,
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
                extra_body=_sampling(request),
                stream=True,
            )
        except _SDK_ERRORS as exc:
            raise self._translate(exc) from exc
        assembler = StreamAssembler(self.name, self.model)
        usage = Usage()
        finish: FinishReason | None = None
        async with events:
            try:
                async for event in events:
                    if isinstance(event, RawMessageStartEvent):
                        usage = _usage(event.message.usage)
                    elif isinstance(event, RawContentBlockDeltaEvent):
                        if isinstance(event.delta, TextDelta) and event.delta.text:
                            chunk = Chunk(text=event.delta.text)
                            assembler.add(chunk)
                            yield chunk
                    elif isinstance(event, RawMessageDeltaEvent):
                        usage = _with_delta(usage, event.usage)
                        finish = _finish(event.delta.stop_reason)
            except _SDK_ERRORS as exc:
                if assembler.parts:
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


def _messages(request: Request) -> list[MessageParam]:
    turns: list[MessageParam] = []
    for message in request.messages:
        content: str | list[TextBlockParam] = message.content
        if message.cache is not None:
            block: TextBlockParam = {
                "type": "text",
                "text": message.content,
                "cache_control": _cache_control(message.cache.ttl),
            }
            content = [block]
        if message.role == "user":
            turns.append({"role": "user", "content": content})
        else:
            turns.append({"role": "assistant", "content": content})
    return turns


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
