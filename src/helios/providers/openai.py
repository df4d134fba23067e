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
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, TypeVar

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
    from openai.types import CompletionUsage
    from openai.types.chat import (
        ChatCompletionFunctionToolParam,
        ChatCompletionMessage,
        ChatCompletionMessageFunctionToolCallParam,
        ChatCompletionMessageParam,
        ChatCompletionToolChoiceOptionParam,
    )
    from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall
    from openai.types.shared_params import ResponseFormatJSONSchema
except ImportError as exc:
    raise MissingDependency("openai", "openai", "The OpenAI provider") from exc

TokenLimitField = Literal["max_completion_tokens", "max_tokens"]
_T = TypeVar("_T")

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
        params = request.params
        max_tokens = params.max_tokens if params.max_tokens is not None else openai.omit
        legacy = self.token_limit_field == "max_tokens"
        try:
            completion = await self._client.chat.completions.create(
                model=self.model,
                messages=_messages(request),
                max_completion_tokens=openai.omit if legacy else max_tokens,
                max_tokens=max_tokens if legacy else openai.omit,
                temperature=_given(params.temperature),
                top_p=_given(params.top_p),
                stop=list(params.stop) or openai.omit,
                seed=_given(params.seed),
                response_format=_response_format(request),
                prompt_cache_key=_prompt_cache_key(request),
                tools=_tools(request),
                tool_choice=_tool_choice(request),
            )
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        if not completion.choices:
            raise ProviderUnavailable(
                "the reply had no choices", provider=self.name, model=self.model
            )
        choice = completion.choices[0]
        return Completion(
            text=choice.message.content or "",
            usage=_usage(completion.usage),
            model=self.model,
            provider=self.name,
            finish_reason=_FINISH.get(choice.finish_reason, "other"),
            tool_calls=_tool_calls(choice.message),
        )

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        params = request.params
        max_tokens = params.max_tokens if params.max_tokens is not None else openai.omit
        legacy = self.token_limit_field == "max_tokens"
        try:
            chunks = await self._client.chat.completions.create(
                model=self.model,
                messages=_messages(request),
                max_completion_tokens=openai.omit if legacy else max_tokens,
                max_tokens=max_tokens if legacy else openai.omit,
                temperature=_given(params.temperature),
                top_p=_given(params.top_p),
                stop=list(params.stop) or openai.omit,
                seed=_given(params.seed),
                response_format=_response_format(request),
                prompt_cache_key=_prompt_cache_key(request),
                tools=_tools(request),
                tool_choice=_tool_choice(request),
                stream=True,
                stream_options={"include_usage": True},
            )
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        assembler = StreamAssembler(self.name, self.model)
        usage = Usage()
        finish: FinishReason | None = None
        async with chunks:
            try:
                async for part in chunks:
                    if part.usage is not None:
                        usage = _usage(part.usage)
                    if not part.choices:
                        continue
                    choice = part.choices[0]
                    deltas = _tool_call_deltas(choice.delta.tool_calls)
                    if choice.delta.content or deltas:
                        chunk = Chunk(text=choice.delta.content or "", tool_calls=deltas)
                        assembler.add(chunk)
                        yield chunk
                    if choice.finish_reason is not None:
                        finish = _FINISH.get(choice.finish_reason, "other")
            except openai.OpenAIError as exc:
                if assembler.parts or assembler.tool_deltas:
                    raise assembler.broken(exc) from exc
                raise self._translate(exc) from exc
        if finish is None:
            # A connection closed cleanly before the finishing chunk still lost the end.
            raise assembler.broken(EOFError("the stream ended before its finish reason"))
        yield Chunk(usage=usage, finish_reason=finish)

    def _translate(self, exc: openai.OpenAIError) -> ProviderError:
        return translate_error(exc, provider=self.name, model=self.model)

    async def aclose(self) -> None:
        await self._client.close()


def _prompt_cache_key(request: Request) -> str | openai.Omit:
    """The stable-prefix hash that L1 sets: OpenAI routes calls sharing it to one cache."""
    key = request.metadata.get("prompt_cache_key")
    return key if isinstance(key, str) and key else openai.omit


def _response_format(request: Request) -> ResponseFormatJSONSchema | openai.Omit:
    if request.response_schema is None:
        return openai.omit
    return {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": request.response_schema},
    }


def _given(value: _T | None) -> _T | openai.Omit:
    return openai.omit if value is None else value


def _tools(request: Request) -> list[ChatCompletionFunctionToolParam] | openai.Omit:
    if not request.tools:
        return openai.omit
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


def _tool_choice(request: Request) -> ChatCompletionToolChoiceOptionParam | openai.Omit:
    choice = request.tool_choice
    if choice is None or not request.tools:
        return openai.omit
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


def _tool_calls(message: ChatCompletionMessage) -> tuple[ToolCall, ...]:
    # Only function calls: Helios offers no custom (free-text) tools, so none come back.
    return tuple(
        ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
        for call in message.tool_calls or ()
        if call.type == "function"
    )


def _tool_call_deltas(deltas: list[ChoiceDeltaToolCall] | None) -> tuple[ToolCallDelta, ...]:
    return tuple(
        ToolCallDelta(
            index=delta.index,
            id=delta.id,
            name=delta.function.name if delta.function else None,
            arguments=(delta.function.arguments or "") if delta.function else "",
        )
        for delta in deltas or ()
    )


def _usage(usage: CompletionUsage | None) -> Usage:
    if usage is None:
        return Usage()
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    return Usage(
        input_tokens=max(usage.prompt_tokens - cached, 0),
        output_tokens=usage.completion_tokens,
        cache_read_tokens=cached,
    )
