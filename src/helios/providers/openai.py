"""OpenAI Chat Completions through the official ``openai`` SDK (async client).

The same adapter serves OpenAI-compatible servers (vLLM, Ollama, llama.cpp's server, ...):
configure ``providers: {vllm: {kind: openai, base_url: http://host:8000/v1}}`` and use
``vllm:<model>``. Two things differ between the two, decided by the provider's name:

- the output cap: the provider named ``openai`` sends ``max_completion_tokens`` (OpenAI
  deprecated ``max_tokens``, and its reasoning models reject it); any other name sends
  ``max_tokens``, the field every compatible server understands (several do not know the
  newer one);
- the key: OpenAI needs one. A compatible server with a ``base_url`` often needs none, so
  a missing key there sends a placeholder instead of failing.

Tools go as function tools (``tools``, ``tool_choice``; a choice is only sent with tools,
as the API refuses one without); assistant turns carry their ``tool_calls`` and a tool
result is a ``tool`` message naming its ``tool_call_id``. Calls come back in
``message.tool_calls``, or streamed as ``delta.tool_calls`` fragments (the first names the
call's id and function, the rest carry pieces of its arguments), each becoming a
:class:`~helios.messages.ToolCallDelta`. ``Request.response_schema`` goes as a
``json_schema`` ``response_format``.

Streams ask for ``stream_options={"include_usage": True}``: the last chunk then carries
usage and no choices. Prompt caching is automatic (prompts of 1024+ tokens); cached
tokens come back in ``prompt_tokens_details.cached_tokens``.

Retries are Helios's (:mod:`helios.providers.retry`), the same for every provider; the
SDK's own are turned off.

Calls go through the SDK's documented generic ``client.post(..., cast_to=object)``, not
``chat.completions.create``: the same client, auth, headers, timeouts, connection pool, SSE
decoder and error classes, but the JSON comes back as plain dicts. The typed layer
(transforming the params, building a pydantic model per reply and per stream chunk) cost
about 1.2 ms of CPU per call and 0.1 ms per chunk, a third of what the gateway added to a
call (``bench/gateway.py``). The reply is read here instead; a reply of the wrong shape is
a :class:`~helios.errors.ProviderUnavailable` ("unusable response").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from helios.config.settings import Settings
from helios.errors import MissingDependency, ProviderError, ProviderUnavailable
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
from helios.providers.openai_client import OFFICIAL_NAME, async_client, translate_error
from helios.providers.retry import with_retries

try:
    import openai
    from openai.types.chat import (
        ChatCompletionFunctionToolParam,
        ChatCompletionMessageFunctionToolCallParam,
        ChatCompletionMessageParam,
        ChatCompletionToolChoiceOptionParam,
    )
    from openai.types.shared_params import ResponseFormatJSONSchema
except ImportError as exc:
    raise MissingDependency("openai", "openai", "The OpenAI provider") from exc

TokenLimitField = Literal["max_completion_tokens", "max_tokens"]
CHAT_PATH = "/chat/completions"
_MALFORMED = (KeyError, TypeError, IndexError, AttributeError)
"""What reading a reply of the wrong shape raises (the SDK's typed models would not)."""

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the deprecated single-function form
}


def create(name: str, model: str, settings: Settings) -> Provider:
    """Build the provider from ``settings.providers[name]``; the key is checked here."""
    client = async_client(name, model, settings)
    limit_field: TokenLimitField = (
        "max_completion_tokens" if name == OFFICIAL_NAME else "max_tokens"
    )
    provider = OpenAIProvider(name, model, client, token_limit_field=limit_field)
    return with_retries(provider, settings.provider(name))


class OpenAIProvider(Provider):
    def __init__(
        self,
        name: str,
        model: str,
        client: openai.AsyncOpenAI,
        *,
        token_limit_field: TokenLimitField = "max_completion_tokens",
    ) -> None:
        self.name = name
        self.model = model
        self.token_limit_field = token_limit_field
        self._client = client

    async def complete(self, request: Request) -> Completion:
        try:
            reply = await self._client.post(
                CHAT_PATH, cast_to=object, body=self._body(request, stream=False)
            )
            return self._completion(reply)
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        except _MALFORMED as exc:
            raise self._unusable(exc) from exc

    def _completion(self, reply: object) -> Completion:
        choices = _field(reply, "choices")
        if not choices:
            raise ProviderUnavailable(
                "the reply had no choices", provider=self.name, model=self.model
            )
        choice = choices[0]
        message = choice["message"]
        return Completion(
            text=message.get("content") or "",
            usage=_usage(_field(reply, "usage")),
            model=self.model,
            provider=self.name,
            finish_reason=_FINISH.get(choice.get("finish_reason"), "other"),
            tool_calls=_tool_calls(message.get("tool_calls")),
        )

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        try:
            chunks = await self._client.post(
                CHAT_PATH,
                cast_to=object,
                body=self._body(request, stream=True),
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        assembler = StreamAssembler(self.name, self.model)
        usage = Usage()
        finish: FinishReason | None = None
        async with chunks:
            try:
                async for part in chunks:
                    if (part_usage := _field(part, "usage")) is not None:
                        usage = _usage(part_usage)
                    choices = _field(part, "choices")
                    if not choices:
                        continue
                    choice = choices[0]
                    delta = choice.get("delta") or {}
                    text = delta.get("content") or ""
                    deltas = _tool_call_deltas(delta.get("tool_calls"))
                    if text or deltas:
                        chunk = Chunk(text=text, tool_calls=deltas)
                        assembler.add(chunk)
                        yield chunk
                    if (reason := choice.get("finish_reason")) is not None:
                        finish = _FINISH.get(reason, "other")
            except (openai.OpenAIError, *_MALFORMED) as exc:
                if assembler.parts or assembler.tool_deltas:
                    raise assembler.broken(exc) from exc
                if isinstance(exc, openai.OpenAIError):
                    raise self._translate(exc) from exc
                raise self._unusable(exc) from exc
        if finish is None:
            # A connection closed cleanly before the finishing chunk still lost the end.
            raise assembler.broken(EOFError("the stream ended before its finish reason"))
        yield Chunk(usage=usage, finish_reason=finish)

    def _body(self, request: Request, *, stream: bool) -> dict[str, object]:
        """The ``/chat/completions`` body; only the fields this request sets."""
        params = request.params
        body: dict[str, object] = {"model": self.model, "messages": _messages(request)}
        if params.max_tokens is not None:
            body[self.token_limit_field] = params.max_tokens
        optional: dict[str, object] = {
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stop": list(params.stop) or None,
            "seed": params.seed,
            "response_format": _response_format(request),
            "prompt_cache_key": _prompt_cache_key(request),
            "tools": _tools(request),
            "tool_choice": _tool_choice(request),
        }
        body.update((key, value) for key, value in optional.items() if value is not None)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _unusable(self, exc: Exception) -> ProviderError:
        return ProviderUnavailable(
            f"unusable response: {type(exc).__name__}: {exc}",
            provider=self.name,
            model=self.model,
        )

    def _translate(self, exc: openai.OpenAIError) -> ProviderError:
        return translate_error(exc, provider=self.name, model=self.model)

    async def aclose(self) -> None:
        await self._client.close()


def _field(payload: object, key: str) -> Any:
    """``payload[key]`` of a JSON object from the wire (``None`` when absent)."""
    if not isinstance(payload, dict):
        raise TypeError(f"expected a JSON object, got {type(payload).__name__}")
    return payload.get(key)


def _prompt_cache_key(request: Request) -> str | None:
    """The stable-prefix hash that L1 sets: OpenAI routes calls sharing it to one cache."""
    key = request.metadata.get("prompt_cache_key")
    return key if isinstance(key, str) and key else None


def _response_format(request: Request) -> ResponseFormatJSONSchema | None:
    if request.response_schema is None:
        return None
    return {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": request.response_schema},
    }


def _tools(request: Request) -> list[ChatCompletionFunctionToolParam] | None:
    if not request.tools:
        return None
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in request.tools
    ]


def _tool_choice(request: Request) -> ChatCompletionToolChoiceOptionParam | None:
    choice = request.tool_choice
    if choice is None or not request.tools:
        return None
    if choice.mode == "tool":
        assert choice.name is not None  # ToolChoice guarantees a name for mode "tool"
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def _messages(request: Request) -> list[ChatCompletionMessageParam]:
    turns: list[ChatCompletionMessageParam] = []
    if request.system is not None:
        turns.append({"role": "system", "content": request.system})
    for message in request.messages:
        if message.role == "user":
            turns.append({"role": "user", "content": message.content})
        elif message.role == "tool":
            assert message.tool_call_id is not None  # Message guarantees one on a tool turn
            turns.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
            )
        elif message.tool_calls:
            # An assistant turn that only called tools has no text: null, not "".
            turns.append(
                {
                    "role": "assistant",
                    "content": message.content or None,
                    "tool_calls": _sent_calls(message),
                }
            )
        else:
            turns.append({"role": "assistant", "content": message.content})
    return turns


def _sent_calls(message: Message) -> list[ChatCompletionMessageFunctionToolCallParam]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for call in message.tool_calls
    ]


def _tool_calls(calls: list[Any] | None) -> tuple[ToolCall, ...]:
    # Only function calls: Helios offers no custom (free-text) tools, so none come back.
    return tuple(
        ToolCall(
            id=call["id"],
            name=call["function"]["name"],
            arguments=call["function"].get("arguments") or "",
        )
        for call in calls or ()
        if call.get("type", "function") == "function"
    )


def _tool_call_deltas(deltas: list[Any] | None) -> tuple[ToolCallDelta, ...]:
    if not deltas:
        return ()
    out: list[ToolCallDelta] = []
    for delta in deltas:
        function = delta.get("function") or {}
        out.append(
            ToolCallDelta(
                index=delta["index"],
                id=delta.get("id"),
                name=function.get("name"),
                arguments=function.get("arguments") or "",
            )
        )
    return tuple(out)


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    details = usage.get("prompt_tokens_details")
    cached = (details.get("cached_tokens") or 0) if details else 0
    return Usage(
        input_tokens=max(usage["prompt_tokens"] - cached, 0),
        output_tokens=usage["completion_tokens"],
        cache_read_tokens=cached,
    )
