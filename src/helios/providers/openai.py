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
from helios.messages import Chunk, Completion, FinishReason, Request, Usage
from helios.providers.base import Provider, StreamAssembler
from helios.providers.openai_client import OFFICIAL_NAME, async_client, translate_error
from helios.providers.retry import with_retries

try:
    import openai
    from openai.types import CompletionUsage
    from openai.types.chat import ChatCompletionMessageParam
    from openai.types.shared_params import ResponseFormatJSONSchema
except ImportError as exc:
    raise MissingDependency("openai", "openai", "The OpenAI provider") from exc

TokenLimitField = Literal["max_completion_tokens", "max_tokens"]
_T = TypeVar("_T")

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}


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
                    if choice.delta.content:
                        chunk = Chunk(text=choice.delta.content)
                        assembler.add(chunk)
                        yield chunk
                    if choice.finish_reason is not None:
                        finish = _FINISH.get(choice.finish_reason, "other")
            except openai.OpenAIError as exc:
                if assembler.parts:
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


def _messages(request: Request) -> list[ChatCompletionMessageParam]:
    turns: list[ChatCompletionMessageParam] = []
    if request.system is not None:
        turns.append({"role": "system", "content": request.system})
    for message in request.messages:
        if message.role == "user":
            turns.append({"role": "user", "content": message.content})
        else:
            turns.append({"role": "assistant", "content": message.content})
    return turns


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
