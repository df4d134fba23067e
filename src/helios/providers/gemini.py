"""Google Gemini (Developer API) through the official ``google-genai`` SDK (async client).

- Roles: Helios's ``assistant`` is Gemini's ``model``; the system prompt goes in
  ``system_instruction``.
- Prompt caching is implicit (Gemini caches long prefixes on its own), so ``cache``
  breakpoints are ignored; ``cached_content_token_count`` reports the tokens read from it.
- Thinking tokens (``thoughts_token_count``) are billed as output and counted as output.
- Tools: function declarations (``parameters_json_schema``) and a function-calling mode
  (``AUTO``, ``NONE``, ``ANY`` for required, ``ANY`` with ``allowed_function_names`` for a
  named tool). A ``function_call`` part becomes a :class:`~helios.messages.ToolCall`, whole
  (Gemini streams calls whole too), with Gemini's id or, as the Developer API usually
  sends none, ``call_<n>`` (its position in the reply); a reply that calls a tool finishes
  with ``tool_calls`` (Gemini says ``STOP``). Going back, a call is a ``function_call``
  part and a tool result a ``function_response`` part (consecutive results share one user
  turn) named after the call it answers, its text wrapped as ``{"result": text}`` unless
  it is a JSON object; a made-up ``call_<n>`` id is never sent back.
- The SDK's hidden extras are switched off, so one call is one request: automatic function
  calling and automatic stream continuation (which silently re-sends a dropped stream).
- Transport: with aiohttp installed (the ``gemini`` extra brings it) the SDK's async client
  sends through aiohttp instead of httpx2; both transports' errors are translated here.
- Retries: ``HttpRetryOptions`` backs off on a fixed schedule and ignores ``retry-after``,
  so the SDK makes one attempt (``attempts=1``, which also turns off its aiohttp path's
  implicit retry of connection errors); :func:`create` wraps the provider in Helios's
  retries.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
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
    ToolChoice,
    Usage,
)
from helios.providers.base import Provider, StreamAssembler
from helios.providers.retry import parse_retry_after, with_retries

try:
    import aiohttp
    import httpx2
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types as genai_types
except ImportError as exc:
    raise MissingDependency("google-genai", "gemini", "The Gemini provider") from exc

# SDK errors, bare transport errors of either transport (the SDK does not wrap them;
# aiohttp's timeouts are TimeoutError), and the JSON error a stream cut in the middle of an
# event leaves behind.
_SDK_ERRORS = (
    genai_errors.APIError,
    genai_errors.UnknownApiResponseError,
    httpx2.HTTPError,
    aiohttp.ClientError,
    TimeoutError,
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
        # One attempt, stated: with no options at all the SDK's aiohttp path retries a
        # refused or dropped connection on its own, after a hidden 1-10 s sleep.
        retry_options=genai_types.HttpRetryOptions(attempts=1),
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
        calls = _tool_calls(response, first_index=0)
        finish = _finish(response) or "other"
        return Completion(
            text=_text(response),
            usage=_usage(response.usage_metadata),
            model=self.model,
            provider=self.name,
            finish_reason="tool_calls" if calls and finish == "stop" else finish,
            tool_calls=calls,
        )

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        assembler = StreamAssembler(self.name, self.model)
        usage = Usage()
        finish: FinishReason | None = None
        calls_so_far = 0
        responses: AsyncIterator[genai_types.GenerateContentResponse] | None = None
        try:
            responses = await self._client.aio.models.generate_content_stream(
                model=self.model, contents=_contents(request), config=_config(request)
            )
            # The request is only sent when iteration starts: errors surface in this loop.
            async for response in responses:
                text = _text(response)
                calls = _tool_calls(response, first_index=calls_so_far)
                deltas = tuple(
                    _whole(call, calls_so_far + number) for number, call in enumerate(calls)
                )
                calls_so_far += len(calls)
                if text or deltas:
                    chunk = Chunk(text=text, tool_calls=deltas)
                    assembler.add(chunk)
                    yield chunk
                if response.usage_metadata is not None:
                    usage = _usage(response.usage_metadata)
                finish = _finish(response) or finish
        except _SDK_ERRORS as exc:
            if assembler.parts or assembler.tool_deltas:
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
        if calls_so_far and finish == "stop":
            finish = "tool_calls"
        yield Chunk(usage=usage, finish_reason=finish)

    def _translate(self, exc: Exception) -> ProviderError:
        """The Helios error for an SDK or transport error: the one place that decides."""
        name, model = self.name, self.model
        if isinstance(exc, (httpx2.TimeoutException, TimeoutError)):
            return ProviderTimeout(f"no answer in time: {exc}", provider=name, model=model)
        if isinstance(exc, (httpx2.HTTPError, aiohttp.ClientError)):
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
        "tools": _tools(request),
        "tool_config": _tool_config(request.tool_choice) if request.tools else None,
    }
    return genai_types.GenerateContentConfig(
        **{key: value for key, value in values.items() if value is not None},
        automatic_function_calling=_NO_AUTOMATIC_FUNCTION_CALLING,
        automatic_continuation=False,
    )


def _tools(request: Request) -> list[genai_types.Tool] | None:
    if not request.tools:
        return None
    declarations = [
        genai_types.FunctionDeclaration(
            name=tool.name,
            description=tool.description or None,
            parameters_json_schema=tool.parameters,
        )
        for tool in request.tools
    ]
    return [genai_types.Tool(function_declarations=declarations)]


_MODES: dict[str, genai_types.FunctionCallingConfigMode] = {
    "auto": genai_types.FunctionCallingConfigMode.AUTO,
    "none": genai_types.FunctionCallingConfigMode.NONE,
    "required": genai_types.FunctionCallingConfigMode.ANY,
    "tool": genai_types.FunctionCallingConfigMode.ANY,
}


def _tool_config(choice: ToolChoice | None) -> genai_types.ToolConfig | None:
    if choice is None:
        return None
    config = genai_types.FunctionCallingConfig(
        mode=_MODES[choice.mode],
        allowed_function_names=[choice.name] if choice.name is not None else None,
    )
    return genai_types.ToolConfig(function_calling_config=config)


def _contents(request: Request) -> list[genai_types.Content]:
    contents: list[genai_types.Content] = []
    names: dict[str, str] = {}  # call id -> function name, the latest turn's winning
    for message in request.messages:
        if message.role == "tool":
            part = _function_response(message, names)
            previous = contents[-1] if contents else None
            if previous is not None and previous.parts and previous.parts[-1].function_response:
                previous.parts.append(part)  # one turn answers all of a turn's calls
            else:
                contents.append(genai_types.Content(role="user", parts=[part]))
            continue
        parts = [genai_types.Part(text=message.content)] if message.content else []
        for call in message.tool_calls:
            names[call.id] = call.name
            parts.append(genai_types.Part(function_call=_function_call(call)))
        contents.append(
            genai_types.Content(
                role="user" if message.role == "user" else "model",
                parts=parts or [genai_types.Part(text="")],
            )
        )
    return contents


# The id a reply's call gets when Gemini sends none (see _tool_calls): never sent back.
_MADE_UP_ID = re.compile(r"call_\d+")


def _sent_id(call_id: str) -> str | None:
    return None if _MADE_UP_ID.fullmatch(call_id) else call_id


def _function_call(call: ToolCall) -> genai_types.FunctionCall:
    try:
        args = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise BadRequest(
            f"tool call {call.id} ({call.name}): its arguments are not a JSON object, "
            "which Gemini needs as the function_call args"
        )
    return genai_types.FunctionCall(id=_sent_id(call.id), name=call.name, args=args)


def _function_response(message: Message, names: Mapping[str, str]) -> genai_types.Part:
    call_id = message.tool_call_id
    assert call_id is not None  # Message guarantees one on a tool turn
    name = names.get(call_id)
    if name is None:
        raise BadRequest(
            f"the tool result for call {call_id} follows no assistant turn that made that "
            "call, and Gemini needs the function's name"
        )
    try:
        value = json.loads(message.content)
    except json.JSONDecodeError:
        value = None
    response = value if isinstance(value, dict) else {"result": message.content}
    return genai_types.Part(
        function_response=genai_types.FunctionResponse(
            id=_sent_id(call_id), name=name, response=response
        )
    )


def _tool_calls(
    response: genai_types.GenerateContentResponse, *, first_index: int
) -> tuple[ToolCall, ...]:
    """The first candidate's function calls; ``first_index`` counts the stream's earlier."""
    if not response.candidates:
        return ()
    content = response.candidates[0].content
    parts = (content.parts if content is not None else None) or []
    calls = [part.function_call for part in parts if part.function_call is not None]
    return tuple(
        ToolCall(
            id=call.id or f"call_{first_index + number}",
            name=call.name or "",
            arguments=json.dumps(call.args or {}),
        )
        for number, call in enumerate(calls)
    )


def _whole(call: ToolCall, index: int) -> ToolCallDelta:
    return ToolCallDelta(index=index, id=call.id, name=call.name, arguments=call.arguments)


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
    if isinstance(response, (httpx2.Response, aiohttp.ClientResponse)):
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
