"""``FunctionProvider``: a test double whose replies come from a function or a script.

It stands in for paid remote APIs in tests and benchmarks. A reply is one of:

- a ``str``: the whole reply (streamed as one chunk per word, keeping the spaces);
- a list of ``str``: the exact chunks a stream yields;
- an ``Exception``: raised when the call starts;
- a list whose items are ``str`` then an ``Exception``: a stream that breaks midway,
  surfacing as :class:`~helios.errors.ProviderUnavailable` with the partial text.

Give either ``fn(request) -> reply`` (sync or async) or ``replies=[...]``, a scripted
sequence consumed one call at a time. Every request is recorded in ``calls``.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

from helios.errors import HeliosError, ProviderError
from helios.messages import Chunk, Completion, Request, Usage
from helios.providers.base import Provider, StreamAssembler, complete_by_streaming

Reply = str | Sequence[str | BaseException] | BaseException
ReplyFunction = Callable[[Request], Reply | Awaitable[Reply]]

_WORD = re.compile(r"\S+\s*|\s+")


def word_chunks(text: str) -> list[str]:
    """Split text into word-sized chunks that join back to exactly the same text."""
    return _WORD.findall(text) or [text]


def approximate_tokens(text: str) -> int:
    """A word count: the double's stand-in for a tokenizer, documented as approximate."""
    return len(text.split())


class ScriptExhausted(HeliosError):
    """A scripted ``FunctionProvider`` was called more times than it has replies."""


class FunctionProvider(Provider):
    def __init__(
        self,
        fn: ReplyFunction | None = None,
        *,
        replies: Iterable[Reply] | None = None,
        name: str = "function",
        model: str = "scripted",
        first_chunk_delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
    ) -> None:
        if (fn is None) == (replies is None):
            raise ValueError("give exactly one of fn or replies")
        self.name = name
        self.model = model
        self._fn = fn
        self._script: deque[Reply] = deque(replies or ())
        self.first_chunk_delay_s = first_chunk_delay_s
        self.chunk_delay_s = chunk_delay_s
        self.calls: list[Request] = []

    async def _reply_for(self, request: Request) -> Reply:
        self.calls.append(request)
        if self._fn is None:
            if not self._script:
                raise ScriptExhausted(
                    f"{self.spec}: no scripted reply left for call {len(self.calls)}"
                )
            return self._script.popleft()
        reply = self._fn(request)
        if inspect.isawaitable(reply):
            return await reply
        return reply

    def _usage(self, request: Request, text: str) -> Usage:
        prompt = " ".join([request.system or "", *(m.content for m in request.messages)])
        return Usage(
            input_tokens=approximate_tokens(prompt), output_tokens=approximate_tokens(text)
        )

    async def complete(self, request: Request) -> Completion:
        return await complete_by_streaming(self, request)

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        reply = await self._reply_for(request)
        if isinstance(reply, BaseException):
            raise reply
        pieces: Sequence[str | BaseException] = (
            word_chunks(reply) if isinstance(reply, str) else reply
        )
        assembler = StreamAssembler(self.name, self.model)
        for position, piece in enumerate(pieces):
            delay = self.first_chunk_delay_s if position == 0 else self.chunk_delay_s
            if delay:
                await asyncio.sleep(delay)
            if isinstance(piece, BaseException):
                if isinstance(piece, ProviderError):
                    raise piece
                raise assembler.broken(piece) from piece
            chunk = Chunk(text=piece)
            assembler.add(chunk)
            yield chunk
        yield Chunk(usage=self._usage(request, assembler.text), finish_reason="stop")
