import asyncio

import pytest

from helios.errors import ProviderUnavailable, RateLimited
from helios.messages import Request
from helios.providers.function import FunctionProvider, ScriptExhausted, word_chunks


async def collect(provider: FunctionProvider, request: Request) -> list[str]:
    return [chunk.text async for chunk in provider.stream(request) if chunk.text]


def test_word_chunks_join_back_exactly() -> None:
    text = "  Paris is\nthe capital.  "
    assert "".join(word_chunks(text)) == text


async def test_function_reply_streams_and_completes_identically() -> None:
    provider = FunctionProvider(lambda request: f"echo {request.messages[-1].content}")
    request = Request.of("hello there")
    chunks = await collect(provider, request)
    completion = await provider.complete(request)
    assert "".join(chunks) == completion.text == "echo hello there"
    assert len(chunks) == 3
    assert completion.usage.output_tokens == 3
    assert len(provider.calls) == 2


async def test_async_function_and_explicit_chunks() -> None:
    async def reply(_: Request) -> list[str]:
        return ["Hel", "lo"]

    provider = FunctionProvider(reply)
    assert await collect(provider, Request.of("x")) == ["Hel", "lo"]


async def test_scripted_sequence_with_errors_on_demand() -> None:
    provider = FunctionProvider(replies=["first", RateLimited("slow down", retry_after=2), "third"])
    request = Request.of("x")
    assert (await provider.complete(request)).text == "first"
    with pytest.raises(RateLimited) as info:
        await provider.complete(request)
    assert info.value.retry_after == 2
    assert (await provider.complete(request)).text == "third"
    with pytest.raises(ScriptExhausted):
        await provider.complete(request)


async def test_stream_breaking_midway_keeps_the_partial_text() -> None:
    provider = FunctionProvider(replies=[["Hello", " wor", ConnectionResetError("reset")]])
    seen: list[str] = []
    with pytest.raises(ProviderUnavailable) as info:
        async for chunk in provider.stream(Request.of("x")):
            seen.append(chunk.text)
    assert info.value.partial_text == "Hello wor" == "".join(seen)


async def test_delays_are_applied_per_chunk() -> None:
    provider = FunctionProvider(replies=["a b"], first_chunk_delay_s=0.05)
    task = asyncio.ensure_future(collect(provider, Request.of("x")))
    await asyncio.sleep(0)
    assert not task.done()
    assert await task == ["a ", "b"]


def test_exactly_one_source_of_replies() -> None:
    with pytest.raises(ValueError):
        FunctionProvider()
    with pytest.raises(ValueError):
        FunctionProvider(lambda r: "x", replies=["y"])
