"""The provider contract: a provider bound to one model answers ``complete()`` and ``stream()``.

Adapters translate a :class:`~helios.messages.Request` into their vendor's wire format and
vendor errors into :mod:`helios.errors`; they do not time calls or price them (the engine
does both, in one place). Wrappers such as retries, fallbacks and the router take a provider
and are providers themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from helios.errors import ProviderUnavailable
from helios.messages import (
    Chunk,
    Completion,
    FinishReason,
    Request,
    ToolCall,
    ToolCallDelta,
    Usage,
)


class Provider(ABC):
    """A model behind one provider. ``name`` is the provider (``"anthropic"``), ``model`` its id."""

    name: str
    model: str

    @abstractmethod
    async def complete(self, request: Request) -> Completion:
        """Return the whole reply at once."""

    @abstractmethod
    def stream(self, request: Request) -> AsyncIterator[Chunk]:
        """Yield the reply as it is generated; the last chunk carries usage and finish reason."""

    async def warm(self) -> None:  # noqa: B027 - optional hook, most providers load nothing
        """Load what the first call would otherwise load (a local model's weights), so that
        the engine's TTFT measures the model and not the loading; the default loads nothing."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release clients and connections; the default holds none."""

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.model}"


class StreamAssembler:
    """Collects streamed chunks into a completion, keeping what arrived if the stream breaks.

    Tool-call deltas are joined per call (by ``index``); ``tool_deltas`` keeps each delta
    with the number of text parts before it, so a cached stream can replay both in order.
    """

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.parts: list[str] = []
        self.tool_deltas: list[tuple[int, ToolCallDelta]] = []
        self.usage = Usage()
        self.finish_reason: FinishReason = "stop"

    def add(self, chunk: Chunk) -> None:
        if chunk.text:
            self.parts.append(chunk.text)
        for delta in chunk.tool_calls:
            self.tool_deltas.append((len(self.parts), delta))
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.provider is not None and chunk.model is not None:
            self.provider, self.model = chunk.provider, chunk.model

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        calls: dict[int, dict[str, str]] = {}
        for _, delta in self.tool_deltas:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            call["name"] = delta.name or call["name"]
            call["arguments"] += delta.arguments
        return tuple(
            ToolCall(
                id=call["id"] or f"call_{index}", name=call["name"], arguments=call["arguments"]
            )
            for index, call in sorted(calls.items())
        )

    def completion(self, *, streamed: bool = True) -> Completion:
        return Completion(
            text=self.text,
            usage=self.usage,
            model=self.model,
            provider=self.provider,
            finish_reason=self.finish_reason,
            streamed=streamed,
            tool_calls=self.tool_calls,
        )

    def broken(self, cause: BaseException) -> ProviderUnavailable:
        """The error to raise when the stream dies midway: it keeps the partial text."""
        return ProviderUnavailable(
            f"stream interrupted after {len(self.text)} characters: {cause}",
            partial_text=self.text,
            provider=self.provider,
            model=self.model,
        )


async def complete_by_streaming(provider: Provider, request: Request) -> Completion:
    """``complete()`` for providers whose one real call is a stream: the stream collected."""
    assembler = StreamAssembler(provider.name, provider.model)
    async for chunk in provider.stream(request):
        if chunk.restart is not None:  # a retried stream starts over
            assembler = StreamAssembler(provider.name, provider.model)
            continue
        assembler.add(chunk)
    return assembler.completion(streamed=False)
