"""Google Gemini (Developer API) through the official ``google-genai`` SDK (async client).

- Roles: Helios's ``assistant`` is Gemini's ``model``; the system prompt goes in
  ``system_instruction``.
- Prompt caching is implicit (Gemini caches long prefixes on its own), so ``cache``
  breakpoints are ignored; ``cached_content_token_count`` reports the tokens read from it.
- Thinking tokens (``thoughts_token_count``) are billed as output and counted as output.
- The SDK's hidden extras are switched off, so one call is one request: automatic function
  calling and automatic stream continuation (which silently re-sends a dropped stream).
- Retries: ``HttpRetryOptions`` backs off on a fixed schedule and ignores ``retry-after``,
  so the SDK does not retry; :func:`create` wraps the provider in Helios's retries.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

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
    import httpx2
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types as genai_types
except ImportError as exc:
    raise MissingDependency("google-genai", "gemini", "The Gemini provider") from exc

# SDK errors, bare httpx2 transport errors (the SDK does not wrap them), and the JSON error
# a stream cut in the middle of an event leaves behind.
_SDK_ERRORS = (
    genai_errors.APIError,
    genai_errors.UnknownApiResponseError,
    httpx2.HTTPError,
    json.JSONDecodeError,
)

_FINISH: dict[genai_types.FinishReason, FinishReason] = {
    genai_types.FinishReason.STOP: "stop",
    genai_types.FinishReason.MAX_TOKENS: "length",
}


def create(name: str, model: str, settings: Settings) -> Provider:
    """Build the provider from ``settings.providers[name]``, wrapped in Helios's retries."""
    config = settings.provider(name)
    key = config.key(name)
    if key is None:
        raise AuthenticationError(config.missing_key_message(name), provider=name, model=model)
    options = genai_types.HttpOptions(
        base_url=config.base_url,
        timeout=round(config.timeout_s * 1000),  # the SDK counts milliseconds
        headers=dict(config.headers) or None,
        retry_options=None,
    )
    client = genai.Client(vertexai=False, api_key=key, http_options=options)
    return with_retries(GeminiProvider(name, model, client), config)


class GeminiProvider(Provider):
    def __init__(self, name: str, model: str, client: genai.Client) -> None:
        self.name = name
        self.model = model
        self._client = client

    async def complete(self, request: Request) -> Completion:
        try:
            response = await self._client.aio.models.generate_content(
                model=self.model, contents=_contents(request), config=_config(request)
            )
        except _SDK_ERRORS as exc:
            raise self._translate(exc) from exc
        return Completion(
            text=_text(response),
            usage=_usage(response.usage_metadata),
            model=self.model,
            provider=self.name,
            finish_reason=_finish(response) or "other",
        )

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        assembler = StreamAssembler(self.name, self.model)
        usage = Usage()
        finish: FinishReason | None = None
        responses: AsyncIterator[genai_types.GenerateContentResponse] | None = None
        try:
            responses = await self._client.aio.models.generate_content_stream(
                model=self.model, contents=_contents(request), config=_config(request)
            )
            # The request is only sent when iteration starts: errors surface in this loop.
            async for response in responses:
                text = _text(response)
                if text:
                    chunk = Chunk(text=text)
                    assembler.add(chunk)
                    yield chunk
                if response.usage_metadata is not None:
                    usage = _usage(response.usage_metadata)
                finish = _finish(response) or finish
        except _SDK_ERRORS as exc:
            if assembler.parts:
                raise assembler.broken(exc) from exc
            raise self._translate(exc) from exc
        finally:
            # Close the SDK's generator (and with it the HTTP response) even when our caller
            # stops early, instead of leaving it to the garbage collector.
            if isinstance(responses, AsyncGenerator):
                await responses.aclose()
        if finish is None:
            # A connection closed cleanly before the last event still lost the reply's end.
            raise assembler.broken(EOFError("the stream ended before its finish reason"))
        yield Chunk(usage=usage, finish_reason=finish)

    def _translate(self, exc: Exception) -> ProviderError:
        """The Helios error for an SDK or transport error: the one place that decides."""
        name, model = self.name, self.model
        if isinstance(exc, httpx2.TimeoutException):
            return ProviderTimeout(f"no answer in time: {exc}", provider=name, model=model)
        if isinstance(exc, httpx2.HTTPError):
            return ProviderUnavailable(f"connection failed: {exc}", provider=name, model=model)
        if not isinstance(exc, genai_errors.APIError):
            return ProviderUnavailable(f"unusable response: {exc}", provider=name, model=model)
        status = exc.code
        message = exc.message or str(exc)
        retry_after = _retry_after(exc) if status == 429 else None
        return error_for_status(
            status, message, provider=name, model=model, retry_after=retry_after
        )

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        # The SDK also opened a sync connection pool at construction; nothing else closes it.
        self._client.close()


_NO_AUTOMATIC_FUNCTION_CALLING = genai_types.AutomaticFunctionCallingConfig(disable=True)


def _config(request: Request) -> genai_types.GenerateContentConfig:
    params = request.params
    # Only fields that carry a value: the SDK converts every explicitly set field, None
    # included, on each call, and that conversion is most of its per-request cost.
    values: dict[str, Any] = {
        "system_instruction": request.system,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_output_tokens": params.max_tokens,
        "stop_sequences": list(params.stop) or None,
        "seed": params.seed,
        "response_mime_type": "application/json" if request.response_schema else None,
        "response_json_schema": request.response_schema,
    }
    return genai_types.GenerateContentConfig(
        **{key: value for key, value in values.items() if value is not None},
        automatic_function_calling=_NO_AUTOMATIC_FUNCTION_CALLING,
        automatic_continuation=False,
    )


def _contents(request: Request) -> list[genai_types.Content]:
    return [
        genai_types.Content(
            role="user" if message.role == "user" else "model",
            parts=[genai_types.Part(text=message.content)],
        )
        for message in request.messages
    ]


def _text(response: genai_types.GenerateContentResponse) -> str:
    """The first candidate's visible text: thought summaries are not part of the reply."""
    if not response.candidates:
        return ""
    content = response.candidates[0].content
    if content is None or not content.parts:
        return ""
    return "".join(part.text for part in content.parts if part.text and not part.thought)


def _finish(response: genai_types.GenerateContentResponse) -> FinishReason | None:
    if response.candidates and response.candidates[0].finish_reason is not None:
        return _FINISH.get(response.candidates[0].finish_reason, "other")
    if response.prompt_feedback is not None and response.prompt_feedback.block_reason:
        return "other"  # the prompt itself was blocked: no candidate will come
    return None


def _usage(meta: genai_types.GenerateContentResponseUsageMetadata | None) -> Usage:
    if meta is None:
        return Usage()
    cached = meta.cached_content_token_count or 0
    prompt = (meta.prompt_token_count or 0) + (meta.tool_use_prompt_token_count or 0)
    return Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=(meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0),
        cache_read_tokens=cached,
    )


def _retry_after(exc: genai_errors.APIError) -> float | None:
    """From the response's headers, else from the ``RetryInfo`` detail Google APIs send."""
    response = exc.response
    if isinstance(response, httpx2.Response):
        seconds = parse_retry_after(response.headers)
        if seconds is not None:
            return seconds
    return _retry_info_delay(exc.details)


def _retry_info_delay(details: Any) -> float | None:
    """``{"error": {"details": [{"@type": "...RetryInfo", "retryDelay": "1.5s"}]}}``."""
    error = details.get("error", details) if isinstance(details, Mapping) else None
    entries = error.get("details") if isinstance(error, Mapping) else None
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if not isinstance(entry, Mapping) or not str(entry.get("@type", "")).endswith("RetryInfo"):
            continue
        delay = entry.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(float(delay[:-1]), 0.0)
            except ValueError:
                return None
    return None
