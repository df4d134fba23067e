"""``FallbackProvider``: try providers in order until one answers; itself a provider.

A provider's failure moves the call to the next one when the error is retryable (rate
limits, timeouts, outages) or an :class:`~helios.errors.AuthenticationError` (another
provider holds other credentials). A :class:`~helios.errors.BadRequest` does not fall back:
the same request would be refused again. A stream falls back only while the caller has seen no text
of its current attempt: switching models would splice two different replies (a retried
stream's restart marker voids the text before it).
When every provider fails, the last error is raised.

``prepare(provider, request)`` tailors the request to each provider just before it is called
(the engine places that model's prompt-cache breakpoints there).

The providers belong to whoever built them (usually the registry), so ``aclose()`` here
closes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from helios.errors import (
    AuthenticationError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from helios.messages import Chunk, Completion, Request
from helios.providers.base import Provider

FallbackHandler = Callable[[Provider, ProviderError, Provider], None]
"""``on_fallback(failed, error, next_provider)``: told before each switch; must not block."""
Preparer = Callable[[Provider, Request], Awaitable[Request]]
"""``prepare(provider, request)``: the request as ``provider`` should receive it."""

_FALLS_BACK = (AuthenticationError, ProviderUnavailable, RateLimited, ProviderTimeout)


def falls_back(error: BaseException) -> bool:
    """Whether another provider may succeed where this error happened."""
    return isinstance(error, ProviderError) and (error.retryable or isinstance(error, _FALLS_BACK))


def _ignore(_failed: Provider, _error: ProviderError, _next: Provider) -> None:
    return None


async def _unchanged(_provider: Provider, request: Request) -> Request:
    return request


class FallbackProvider(Provider):
    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        on_fallback: FallbackHandler | None = None,
        prepare: Preparer | None = None,
    ) -> None:
        if not providers:
            raise ValueError("a fallback chain needs at least one provider")
        self.providers = list(providers)
        self.on_fallback = on_fallback or _ignore
        self.prepare = prepare or _unchanged
        self.name = "fallback"
        self.model = ",".join(provider.spec for provider in self.providers)

    async def warm(self) -> None:
        """Warm the first provider; the others only load if the chain reaches them."""
        await self.providers[0].warm()

    def _next_after(self, index: int, error: ProviderError) -> Provider | None:
        """The provider to try after ``providers[index]`` failed with ``error``, if any."""
        if not falls_back(error) or index + 1 >= len(self.providers):
            return None
        following = self.providers[index + 1]
        self.on_fallback(self.providers[index], error, following)
        return following

    async def complete(self, request: Request) -> Completion:
        for index, provider in enumerate(self.providers):
            try:
                return await provider.complete(await self.prepare(provider, request))
            except ProviderError as error:
                if self._next_after(index, error) is None:
                    raise
        raise AssertionError("unreachable: the last provider returns or raises")

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        for index, provider in enumerate(self.providers):
            started = False
            try:
                async for chunk in provider.stream(await self.prepare(provider, request)):
                    # a restart voids the text before it: falling back is safe again
                    started = chunk.restart is None and (
                        started or bool(chunk.text or chunk.tool_calls)
                    )
                    if chunk.finish_reason is not None and chunk.provider is None:
                        # the caller only knows it called the chain: say who answered
                        chunk = chunk.model_copy(
                            update={"provider": provider.name, "model": provider.model}
                        )
                    yield chunk
                return
            except ProviderError as error:
                if started or self._next_after(index, error) is None:
                    raise
