import pytest

from helios.errors import (
    AuthenticationError,
    BadRequest,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from helios.governance.fallback import FallbackProvider, falls_back
from helios.messages import Request
from helios.providers.base import Provider
from helios.providers.function import FunctionProvider

REQUEST = Request.of("hello")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, failed: Provider, error: ProviderError, following: Provider) -> None:
        self.calls.append((failed.spec, type(error).__name__, following.spec))


@pytest.mark.parametrize(
    "error",
    [
        ProviderUnavailable("down"),
        RateLimited("slow down"),
        ProviderTimeout("late"),
        AuthenticationError("no key"),
    ],
)
async def test_complete_falls_back_on_provider_failures(error: ProviderError) -> None:
    first = FunctionProvider(replies=[error], name="a", model="one")
    second = FunctionProvider(replies=["fine"], name="b", model="two")
    recorder = Recorder()
    chain = FallbackProvider([first, second], on_fallback=recorder)
    completion = await chain.complete(REQUEST)
    assert completion.text == "fine"
    assert (completion.provider, completion.model) == ("b", "two")
    assert recorder.calls == [("a:one", type(error).__name__, "b:two")]


async def test_bad_request_does_not_fall_back() -> None:
    first = FunctionProvider(replies=[BadRequest("malformed")], name="a", model="one")
    second = FunctionProvider(replies=["fine"], name="b", model="two")
    with pytest.raises(BadRequest):
        await FallbackProvider([first, second]).complete(REQUEST)
    assert second.calls == []


async def test_all_fail_raises_the_last_error() -> None:
    first = FunctionProvider(replies=[ProviderUnavailable("first down")], name="a", model="1")
    second = FunctionProvider(replies=[RateLimited("second busy")], name="b", model="2")
    recorder = Recorder()
    with pytest.raises(RateLimited, match="second busy"):
        await FallbackProvider([first, second], on_fallback=recorder).complete(REQUEST)
    assert recorder.calls == [("a:1", "ProviderUnavailable", "b:2")]


async def test_stream_falls_back_before_the_first_chunk() -> None:
    first = FunctionProvider(replies=[ProviderUnavailable("down")], name="a", model="1")
    second = FunctionProvider(replies=[["hel", "lo"]], name="b", model="2")
    chunks = [chunk async for chunk in FallbackProvider([first, second]).stream(REQUEST)]
    assert "".join(chunk.text for chunk in chunks) == "hello"


async def test_stream_does_not_fall_back_after_the_first_chunk() -> None:
    broken = ["par", "tial", ProviderUnavailable("dropped")]
    first = FunctionProvider(replies=[broken], name="a", model="1")
    second = FunctionProvider(replies=["never"], name="b", model="2")
    received: list[str] = []
    with pytest.raises(ProviderUnavailable, match="dropped"):
        async for chunk in FallbackProvider([first, second]).stream(REQUEST):
            received.append(chunk.text)
    assert received == ["par", "tial"]
    assert second.calls == []


def test_falls_back_classification() -> None:
    assert falls_back(ProviderUnavailable("x"))
    assert falls_back(AuthenticationError("x"))
    assert not falls_back(BadRequest("x"))
    assert not falls_back(ValueError("x"))


def test_is_a_provider_and_needs_one() -> None:
    chain = FallbackProvider([FunctionProvider(replies=[], name="a", model="1")])
    assert isinstance(chain, Provider)
    assert chain.spec == "fallback:a:1"
    with pytest.raises(ValueError):
        FallbackProvider([])
