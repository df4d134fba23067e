"""RetryingProvider's time limits (first token, deadline) and what its errors say."""

from __future__ import annotations

import asyncio
import random

import pytest

from helios.errors import BadRequest, ProviderTimeout, ProviderUnavailable, RateLimited
from helios.messages import Chunk, Request
from helios.providers.function import FunctionProvider, Reply
from helios.providers.retry import RetryingProvider

HANG_S = 60.0  # far past every limit below: a test that waits for it has failed


async def hang(_request: Request) -> Reply:
    await asyncio.sleep(HANG_S)
    return "too late"


def wrapped(
    inner: FunctionProvider,
    *,
    max_retries: int = 2,
    first_token_timeout_s: float | None = None,
    deadline_s: float | None = None,
) -> RetryingProvider:
    return RetryingProvider(
        inner,
        max_retries=max_retries,
        base_delay_s=0.01,
        max_delay_s=5.0,
        first_token_timeout_s=first_token_timeout_s,
        deadline_s=deadline_s,
        rng=random.Random(0),
    )


async def collect(provider: RetryingProvider, limit_s: float = 10.0) -> list[Chunk]:
    async def run() -> list[Chunk]:
        return [chunk async for chunk in provider.stream(Request.of("Hi"))]

    return await asyncio.wait_for(run(), limit_s)


async def test_no_first_token_fails_each_attempt_and_says_so() -> None:
    inner = FunctionProvider(hang)
    provider = wrapped(inner, first_token_timeout_s=0.05)
    with pytest.raises(ProviderTimeout) as info:
        await collect(provider)
    assert str(info.value) == "function:scripted: no first token within 0.05 s on 3 attempts"
    assert len(inner.calls) == 3


async def test_a_late_first_token_is_retried_and_then_answered() -> None:
    calls = 0

    async def late_once(_request: Request) -> Reply:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(HANG_S)
        return "on time"

    provider = wrapped(FunctionProvider(late_once), first_token_timeout_s=0.05)
    chunks = await collect(provider)
    [marker] = [chunk for chunk in chunks if chunk.restart is not None]
    assert marker.restart is not None
    assert marker.restart.startswith("attempt 1 of 3 failed: no first token within 0.05 s")
    assert "".join(chunk.text for chunk in chunks) == "on time"


async def test_the_deadline_cuts_an_attempt_that_is_still_running() -> None:
    inner = FunctionProvider(hang)
    provider = wrapped(inner, deadline_s=0.1)
    with pytest.raises(ProviderTimeout, match=r"no complete reply within the 0\.1 s deadline"):
        await collect(provider)
    with pytest.raises(ProviderTimeout, match=r"within the 0\.1 s deadline"):
        await asyncio.wait_for(provider.complete(Request.of("Hi")), 10)
    assert len(inner.calls) == 2  # one each: no attempt after the deadline


async def test_the_deadline_leaves_no_room_for_a_long_wait() -> None:
    inner = FunctionProvider(
        replies=[RateLimited("busy", retry_after=0.3), RateLimited("busy", retry_after=3)]
    )
    provider = wrapped(inner, deadline_s=1.0)
    with pytest.raises(RateLimited) as info:
        await asyncio.wait_for(provider.complete(Request.of("Hi")), 10)
    assert len(inner.calls) == 2
    assert info.value.retry_after == 3
    assert "no time for another attempt within the 1 s deadline" in str(info.value)
    assert "earlier attempts: 1) busy" in str(info.value)


async def test_several_failures_are_told_in_order_with_the_last_ones_kind() -> None:
    inner = FunctionProvider(
        replies=[ProviderUnavailable("overloaded"), ["Hel", ConnectionResetError("cut")]]
    )
    provider = wrapped(inner, max_retries=1)
    with pytest.raises(ProviderUnavailable) as info:
        await collect(provider)
    message = str(info.value)
    assert message.startswith("function:scripted: stream interrupted after 3 characters")
    assert message.endswith("on attempt 2 (earlier attempts: 1) overloaded)")
    assert info.value.partial_text == "Hel"


async def test_one_failure_that_cannot_be_retried_is_raised_as_it_came() -> None:
    refused = BadRequest("no such field", provider="function", model="scripted")
    provider = wrapped(FunctionProvider(replies=[refused, "never"]))
    with pytest.raises(BadRequest) as info:
        await collect(provider)
    assert info.value is refused


async def test_a_retried_complete_call_tells_why_each_attempt_failed() -> None:
    inner = FunctionProvider(replies=[ProviderUnavailable("down"), "fine"])
    completion = await wrapped(inner).complete(Request.of("Hi"))
    assert completion.text == "fine"
    assert completion.retries == ("down",)


async def test_the_same_failure_every_time_is_told_once_with_the_count() -> None:
    inner = FunctionProvider(replies=[ProviderUnavailable("overloaded.")] * 3)
    with pytest.raises(ProviderUnavailable) as info:
        await wrapped(inner).complete(Request.of("Hi"))
    assert str(info.value) == "overloaded on 3 attempts"
