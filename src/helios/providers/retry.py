"""Retries as a wrapper: ``RetryingProvider`` is itself a provider.

Every remote adapter turns its SDK's retries off and is wrapped in this class, so that
retries behave the same whatever the provider: google-genai ignores ``retry-after``, and
the Anthropic SDK sleeps for any ``retry-after`` the server sends, an hour included. Here
a wait longer than ``providers.<name>.max_retry_wait_s`` goes back to the caller as
:class:`~helios.errors.RateLimited` instead of blocking the call. The schedule is
:class:`~helios.retries.RetryPolicy`'s, as for every retry loop in Helios; the time limits
(``first_token_timeout_s``, ``deadline_s``) are the endpoint's settings.

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
from helios.errors import (
    HeliosError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
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


_RETRYING = "; retrying in "


def failure_of(restart: str) -> str:
    """What failed, from a restart marker's text, without the retry it announced (for a
    caller that cannot make that retry: the engine, when text was already passed on)."""
    return restart.split(_RETRYING, 1)[0]


def with_retries(provider: Provider, config: ProviderSettings) -> Provider:
    """``provider`` wrapped with the endpoint's retry settings and time limits."""
    return RetryingProvider(
        provider,
        max_retries=config.max_retries,
        base_delay_s=config.retry_base_delay_s,
        max_delay_s=config.max_retry_wait_s,
        first_token_timeout_s=config.first_token_timeout_s,
        deadline_s=config.deadline_s,
    )


class RetryingProvider(Provider):
    """Retries ``retryable`` Helios errors with exponential backoff and jitter, within time
    limits.

    A :class:`~helios.errors.RateLimited` error that names a ``retry_after`` waits exactly
    that long; when it asks for more than ``max_delay_s`` the error goes straight to the
    caller (whose governor can defer the work) instead of blocking the call.

    A stream that breaks is retried too, even after it has sent text: before the next
    attempt the stream yields a marker chunk (``Chunk.restart``, saying why), after which
    the reply starts over; a consumer that already showed text must discard it (the engine
    does, and tells its own caller). A stream that sends nothing within
    ``first_token_timeout_s`` fails that attempt with :class:`~helios.errors.ProviderTimeout`
    (retried like the rest). ``deadline_s`` bounds the whole call, every attempt and wait
    included: a retry that could not start before it is not made, and an attempt still
    running at it is cut. When more than one attempt failed, the error raised is the last
    one's kind with a message that tells every attempt, e.g. "no first token within 30 s
    on 3 attempts".
    """

    def __init__(
        self,
        inner: Provider,
        *,
        max_retries: int = 2,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        first_token_timeout_s: float | None = None,
        deadline_s: float | None = None,
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
        self.first_token_timeout_s = first_token_timeout_s
        self.deadline_s = deadline_s
        self.policy = RetryPolicy(
            attempts=max_retries + 1,
            base_s=base_delay_s,
            cap_s=max_delay_s,
            jitter=0.25,
            max_retry_wait_s=max_delay_s,
        )
        self._rng = rng or random.Random()

    async def complete(self, request: Request) -> Completion:
        attempts = _Attempts(self, time.monotonic())
        while True:
            try:
                async with asyncio.timeout(attempts.limit_s(first_token=False)):
                    completion = await self.inner.complete(request)
                if attempts.failures:
                    completion = completion.model_copy(
                        update={"retries": (*attempts.failures, *completion.retries)}
                    )
                return completion
            except TimeoutError:
                error: HeliosError = attempts.out_of_time()
            except HeliosError as exc:
                error = exc
            delay = attempts.failed(error)
            await asyncio.sleep(delay)

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        attempts = _Attempts(self, time.monotonic())
        while True:
            chunks = self.inner.stream(request)
            first = True
            try:
                while True:
                    try:
                        async with asyncio.timeout(attempts.limit_s(first_token=first)):
                            chunk = await anext(chunks)
                    except StopAsyncIteration:
                        return
                    first = False
                    yield chunk
            except TimeoutError:
                error: HeliosError = attempts.out_of_time(first_token=first)
            except HeliosError as exc:
                error = exc
            finally:
                # Close the inner stream now, not when the garbage collector gets to it,
                # so its connection is released even if our caller stops early.
                if isinstance(chunks, AsyncGenerator):
                    await chunks.aclose()
            delay = attempts.failed(error)
            yield Chunk(
                restart=f"{attempts.last_failure()}{_RETRYING}{delay:.1f} s",
                provider=self.name,
                model=self.model,
            )
            await asyncio.sleep(delay)

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


class _Attempts:
    """One call's attempts: the time limits of the next one, and what the failed ones were."""

    def __init__(self, owner: RetryingProvider, started: float) -> None:
        self.owner = owner
        self.started = started
        self.failures: list[str] = []
        self._deadline_passed = False

    @property
    def total(self) -> int:
        return self.owner.max_retries + 1

    def remaining_s(self) -> float | None:
        deadline = self.owner.deadline_s
        return None if deadline is None else deadline - (time.monotonic() - self.started)

    def limit_s(self, *, first_token: bool) -> float | None:
        """How long the next wait (for the first chunk, or any later one) may last."""
        limits = [self.remaining_s()]
        if first_token:
            limits.append(self.owner.first_token_timeout_s)
        known = [limit for limit in limits if limit is not None]
        return max(min(known), 0.0) if known else None

    def out_of_time(self, *, first_token: bool = False) -> ProviderTimeout:
        """The timeout that just fired: the first-token one, or the call's deadline."""
        owner = self.owner
        remaining = self.remaining_s()
        timeout = owner.first_token_timeout_s
        if first_token and timeout is not None and (remaining is None or remaining > 0.001):
            message = f"no first token within {timeout:g} s"
        else:
            self._deadline_passed = True
            message = f"no complete reply within the {owner.deadline_s:g} s deadline"
        return ProviderTimeout(message, provider=owner.name, model=owner.model)

    def failed(self, error: HeliosError) -> float:
        """Note a failed attempt; the wait before the next, or raise the call's error."""
        self.failures.append(_reason(error))
        owner = self.owner
        delay = (
            None
            if self._deadline_passed
            else owner._delay_before_retry(error, len(self.failures) - 1)
        )
        if delay is None:
            raise self._final(error)
        remaining = self.remaining_s()
        if remaining is not None and delay >= remaining:
            self.failures[-1] += (
                f" (no time for another attempt within the {owner.deadline_s:g} s deadline)"
            )
            raise self._final(error)
        return delay

    def last_failure(self) -> str:
        return f"attempt {len(self.failures)} of {self.total} failed: {self.failures[-1]}"

    def _final(self, error: HeliosError) -> HeliosError:
        """``error`` as it ends the call: alone it is raised as it came; after others, as
        the same kind with a message that tells every attempt."""
        count = len(self.failures)
        if count == 1 or not isinstance(error, ProviderError):
            return error
        final = _with_message(error, self._summary())
        final.attempts = tuple(self.failures)
        return final

    def _summary(self) -> str:
        count = len(self.failures)
        if len(set(self.failures)) == 1:  # e.g. no first token, every time
            message = f"{self.failures[0]} on {count} attempts"
        else:
            earlier = "; ".join(f"{n}) {why}" for n, why in enumerate(self.failures[:-1], 1))
            message = f"{self.failures[-1]} on attempt {count} (earlier attempts: {earlier})"
        return message


def _reason(error: HeliosError) -> str:
    """An error's message without the ``provider:model:`` prefix its owner already names."""
    text = str(error).rstrip(".")
    if isinstance(error, ProviderError) and error.provider:
        prefix = f"{error.provider}:{error.model}: "
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _with_message(error: ProviderError, message: str) -> ProviderError:
    """A copy of ``error`` (same class, same details) that says ``message``."""
    where = {"provider": error.provider, "model": error.model}
    if isinstance(error, RateLimited):
        return RateLimited(message, retry_after=error.retry_after, **where)
    if isinstance(error, ProviderUnavailable):
        return ProviderUnavailable(
            message, partial_text=error.partial_text, status_code=error.status_code, **where
        )
    return type(error)(message, status_code=error.status_code, **where)
