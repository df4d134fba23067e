import random
import time
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import ClassVar

import pytest

from helios.catalog import Catalog
from helios.errors import BadRequest, ProviderUnavailable, RateLimited
from helios.messages import Message, Request, ToolCall, ToolChoice
from helios.providers import gemini as adapter
from helios.providers.function import FunctionProvider, Reply
from helios.providers.registry import ProviderRegistry
from helios.providers.retry import RetryingProvider, parse_retry_after
from helios.sim import SimServer
from tests.providers.remote import (
    LONG_TEXT,
    Connect,
    Factory,
    RemoteContract,
    collect,
    connector,
    joined,
    remote_settings,
)
from tests.providers.remote_tools import (
    CLOCK,
    QUESTION,
    WEATHER,
    Forecast,
    ToolContract,
    asking,
    structured,
)

MODEL = "gemini-2.5-flash"


@pytest.fixture
async def connect(sim: SimServer) -> AsyncIterator[Connect]:
    async with connector(sim, "gemini", MODEL, adapter.create, sim.base_url) as connect:
        yield connect


class TestGeminiContract(RemoteContract, ToolContract):
    kind = "gemini"
    model = MODEL
    factory: ClassVar[Factory] = staticmethod(adapter.create)
    key_variables = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    sdk_module = "google.genai"
    extra = "gemini"


def last_body(sim: SimServer) -> dict[str, object]:
    return dict(sim.state.requests[-1].body)


async def test_repeated_long_prompt_reads_implicitly_cached_tokens(connect: Connect) -> None:
    provider = connect()
    request = Request.of("What is rule 7?", system=LONG_TEXT)
    first = await provider.complete(request)
    assert first.usage.cache_read_tokens == 0 and first.usage.input_tokens > 1024
    second = await provider.complete(request)
    assert second.usage.cache_read_tokens >= 1024
    assert second.usage.input_tokens == first.usage.input_tokens - second.usage.cache_read_tokens
    streamed = (await collect(provider.stream(request)))[-1].usage
    assert streamed == second.usage


async def test_request_translation(connect: Connect, sim: SimServer) -> None:
    provider = connect()
    request = Request(
        messages=(
            Message(role="user", content="Hi"),
            Message(role="assistant", content="Hello"),
            Message(role="user", content="Go on"),
        ),
        system="Be brief",
        params={"temperature": 0.5, "top_p": 0.9, "stop": ["END"], "max_tokens": 20, "seed": 3},
    )
    await provider.complete(request)
    body = last_body(sim)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief"}], "role": "user"}
    assert body["contents"] == [
        {"parts": [{"text": "Hi"}], "role": "user"},
        {"parts": [{"text": "Hello"}], "role": "model"},
        {"parts": [{"text": "Go on"}], "role": "user"},
    ]
    assert body["generationConfig"] == {
        "temperature": 0.5,
        "topP": 0.9,
        "maxOutputTokens": 20,
        "stopSequences": ["END"],
        "seed": 3,
    }


async def test_tools_translation(connect: Connect, sim: SimServer) -> None:
    provider = connect()
    await provider.complete(asking(choice=ToolChoice(mode="tool", name="get_time")))
    body = last_body(sim)
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "description": "The weather ahead",
                    "name": "get_weather",
                    "parameters_json_schema": WEATHER.parameters,
                },
                {"name": "get_time", "parameters_json_schema": CLOCK.parameters},
            ]
        }
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"allowedFunctionNames": ["get_time"], "mode": "ANY"}
    }
    for mode, sent in {"auto": "AUTO", "none": "NONE", "required": "ANY"}.items():
        await provider.complete(asking(choice=ToolChoice(mode=mode)))
        assert last_body(sim)["toolConfig"] == {"functionCallingConfig": {"mode": sent}}
    await provider.complete(asking())
    assert "toolConfig" not in last_body(sim)


async def test_calls_and_results_become_function_parts(connect: Connect, sim: SimServer) -> None:
    calls = (
        ToolCall(id="call_0", name="get_weather", arguments='{"city": "Oslo"}'),
        ToolCall(id="fc-from-gemini", name="get_time", arguments="{}"),
    )
    request = Request(
        messages=(
            QUESTION,
            Message(role="assistant", content="", tool_calls=calls),
            Message(role="tool", content="Sunny.", tool_call_id="call_0"),
            Message(role="tool", content='{"time": "12:00"}', tool_call_id="fc-from-gemini"),
        ),
        tools=(WEATHER, CLOCK),
    )
    completion = await connect().complete(request)
    assert completion.text and completion.finish_reason == "stop"
    contents = last_body(sim)["contents"]
    assert isinstance(contents, list)
    # A made-up call_<n> id goes nowhere; Gemini's own ids go back with call and result.
    assert contents[1:] == [
        {
            "parts": [
                {"functionCall": {"args": {"city": "Oslo"}, "name": "get_weather"}},
                {"functionCall": {"args": {}, "id": "fc-from-gemini", "name": "get_time"}},
            ],
            "role": "model",
        },
        {
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"result": "Sunny."}}},
                {
                    "functionResponse": {
                        "id": "fc-from-gemini",
                        "name": "get_time",
                        "response": {"time": "12:00"},
                    }
                },
            ],
            "role": "user",
        },
    ]


async def test_a_result_for_no_known_call_is_refused(connect: Connect) -> None:
    orphan = Message(role="tool", content="Sunny.", tool_call_id="call_7")
    with pytest.raises(BadRequest, match="call_7"):
        await connect().complete(Request(messages=(QUESTION, orphan), tools=(WEATHER,)))


async def test_structured_output_follows_the_schema(connect: Connect, sim: SimServer) -> None:
    provider = connect()
    request = Request.of("Forecast, please.", response_schema=Forecast.model_json_schema())
    completion = await provider.complete(request)
    assert len(structured(completion).days) == 2
    config = last_body(sim)["generationConfig"]
    assert isinstance(config, dict)
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == Forecast.model_json_schema()
    chunks = await collect(provider.stream(request))
    assert "".join(chunk.text for chunk in chunks) == completion.text


async def test_resolves_through_the_registry_wrapped_in_retries(sim: SimServer) -> None:
    registry = ProviderRegistry(remote_settings("gemini", sim.base_url), Catalog.load())
    provider = registry.resolve("gemini:gemini-2.5-flash")
    try:
        assert isinstance(provider, RetryingProvider)
        assert isinstance(provider.inner, adapter.GeminiProvider)
        assert provider.spec == "gemini:gemini-2.5-flash"
    finally:
        await registry.aclose()


# --- RetryingProvider, the wrapper Gemini relies on -------------------------------------


def retrying(
    replies: list[Reply], max_retries: int = 2, max_delay_s: float = 1.0
) -> tuple[RetryingProvider, FunctionProvider]:
    inner = FunctionProvider(replies=replies)
    wrapper = RetryingProvider(
        inner,
        max_retries=max_retries,
        base_delay_s=0.01,
        max_delay_s=max_delay_s,
        rng=random.Random(0),
    )
    return wrapper, inner


async def test_retries_retryable_errors_then_succeeds() -> None:
    provider, inner = retrying(
        [ProviderUnavailable("down"), RateLimited("slow", retry_after=0.05), "ok"]
    )
    assert (await provider.complete(Request.of("Hi"))).text == "ok"
    assert len(inner.calls) == 3


async def test_gives_up_after_max_retries() -> None:
    provider, _ = retrying([ProviderUnavailable("1"), ProviderUnavailable("2")], max_retries=1)
    with pytest.raises(ProviderUnavailable, match="2"):
        await provider.complete(Request.of("Hi"))


async def test_does_not_retry_what_cannot_succeed() -> None:
    provider, inner = retrying([BadRequest("no"), "never"])
    with pytest.raises(BadRequest):
        await provider.complete(Request.of("Hi"))
    assert len(inner.calls) == 1


async def test_a_retry_after_beyond_the_cap_goes_to_the_caller() -> None:
    provider, _ = retrying([RateLimited("later", retry_after=60), "never"], max_delay_s=1.0)
    with pytest.raises(RateLimited) as info:
        await provider.complete(Request.of("Hi"))
    assert info.value.retry_after == 60


async def test_streams_retry_before_and_after_their_first_chunk() -> None:
    provider, _ = retrying([ProviderUnavailable("down"), ["Hello", " world"]])
    chunks = await collect(provider.stream(Request.of("Hi")))
    assert joined(chunks) == "Hello world"
    assert [chunk.restart is not None for chunk in chunks].count(True) == 1
    broken, inner = retrying([["Hello", ConnectionResetError("cut")], "again"])
    chunks = await collect(broken.stream(Request.of("Hi")))
    texts = [chunk.restart or chunk.text for chunk in chunks if chunk.restart or chunk.text]
    assert texts[0] == "Hello" and texts[-1] == "again"
    assert texts[1].startswith("attempt 1 of 3 failed: stream interrupted after 5 characters")
    assert len(inner.calls) == 2
    cut, _ = retrying([["Hello", ConnectionResetError("cut")]], max_retries=0)
    with pytest.raises(ProviderUnavailable) as info:
        await collect(cut.stream(Request.of("Hi")))
    assert info.value.partial_text == "Hello"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past: now
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_reads_future_http_dates() -> None:
    seconds = parse_retry_after({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert seconds is not None and 25 <= seconds <= 31
