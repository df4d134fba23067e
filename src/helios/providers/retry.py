"""Retries as a wrapper: ``RetryingProvider`` is itself a provider.

Every remote adapter turns its SDK's retries off and is wrapped in this class, so that
retries behave the same whatever the provider: google-genai ignores ``retry-after``, and
the Anthropic SDK sleeps for any ``retry-after`` the server sends, an hour included. Here
a wait longer than ``providers.<name>.max_retry_wait_s`` goes back to the caller as
:class:`~helios.errors.RateLimited` instead of blocking the call. The schedule is
:class:`~helios.retries.RetryPolicy`'s, as for every retry loop in Helios.

``parse_retry_after`` lives here too: every adapter uses it to fill
:attr:`~helios.errors.RateLimited.retry_after` from a throttled response's headers.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping

from helios.config.providers import ProviderSettings
from helios.errors import HeliosError, RateLimited
from helios.messages import Chunk, Completion, Request
from helios.providers.base import Provider
from helios.retries import RetryPolicy


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``retry-after`` as seconds or an HTTP date.

    ``None`` when the headers say nothing usable; never negative (a date in the past means
    "now").
    """
    if headers is None:
        return None
    milliseconds = _finite_float(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return max(milliseconds / 1000.0, 0.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite_float(value)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _finite_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def with_retries(provider: Provider, config: ProviderSettings) -> Provider:
    """``provider`` wrapped with the endpoint's retry settings."""
    return RetryingProvider(
        provider, max_retries=config.max_retries, max_delay_s=config.max_retry_wait_s
    )


class RetryingProvider(Provider):
    """Retries ``retryable`` Helios errors with exponential backoff and jitter.

    A :class:`~helios.errors.RateLimited` error that names a ``retry_after`` waits exactly
    that long; when it asks for more than ``max_delay_s`` the error goes straight to the
    caller (whose governor can defer the work) instead of blocking the call. Streams are
    retried only until their first chunk: after that the caller has seen text, and a
    retry would repeat it.
    """

    def __init__(
        self,
        inner: Provider,
        *,
        max_retries: int = 2,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.max_retries = max_retries
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.policy = RetryPolicy(
            attempts=max_retries + 1,
            base_s=base_delay_s,
            cap_s=max_delay_s,
            jitter=0.25,
            max_retry_wait_s=max_delay_s,
        )
        self._rng = rng or random.Random()

    async def complete(self, request: Request) -> Completion:
        attempt = 0
        while True:
            try:
                return await self.inner.complete(request)
            except HeliosError as exc:
                delay = self._delay_before_retry(exc, attempt)
                if delay is None:
                    raise
            await asyncio.sleep(delay)
            attempt += 1

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        attempt = 0
        while True:
            started = False
            chunks = self.inner.stream(request)
            try:
                async for chunk in chunks:
                    started = True
                    yield chunk
                return
            except HeliosError as exc:
                delay = None if started else self._delay_before_retry(exc, attempt)
                if delay is None:
                    raise
            finally:
                # Close the inner stream now, not when the garbage collector gets to it,
                # so its connection is released even if our caller stops early.
                if isinstance(chunks, AsyncGenerator):
                    await chunks.aclose()
            await asyncio.sleep(delay)
            attempt += 1

    def _delay_before_retry(self, exc: HeliosError, attempt: int) -> float | None:
        """Seconds to sleep before the next attempt, or ``None`` to give up."""
        if not exc.retryable:
            return None
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        return self.policy.delay_s(attempt + 1, retry_after=retry_after, rng=self._rng)

    async def warm(self) -> None:
        await self.inner.warm()

    async def aclose(self) -> None:
        await self.inner.aclose()
