from collections.abc import AsyncIterator
from typing import ClassVar

import httpx2
import openai
import pytest

from helios.catalog import Catalog
from helios.config.providers import ProviderSettings
from helios.config.settings import Settings
from helios.errors import AuthenticationError, ProviderUnavailable
from helios.messages import Message, Request, ToolCall, ToolChoice
from helios.providers import openai as adapter
from helios.providers.registry import ProviderRegistry
from helios.providers.retry import RetryingProvider
from helios.sim import SimServer
from tests.providers.remote import (
    LONG_TEXT,
    Connect,
    Factory,
    RemoteContract,
    collect,
    connector,
    remote_settings,
)
from tests.providers.remote_tools import (
    CLOCK,
    QUESTION,
    WEATHER,
    Forecast,
    ToolContract,
    answered,
    asking,
    structured,
)

MODEL = "gpt-5-mini"


def v1(sim: SimServer) -> str:
    return sim.base_url + "/v1"


@pytest.fixture
async def connect(sim: SimServer) -> AsyncIterator[Connect]:
    async with connector(sim, "openai", MODEL, adapter.create, v1(sim)) as connect:
        yield connect


class TestOpenAIContract(RemoteContract, ToolContract):
    kind = "openai"
    model = MODEL
    factory: ClassVar[Factory] = staticmethod(adapter.create)
    key_variables = ("OPENAI_API_KEY",)
    sdk_module = "openai"
    extra = "openai"

    @classmethod
    def base_url(cls, sim: SimServer) -> str:
        return v1(sim)


def last_body(sim: SimServer) -> dict[str, object]:
    return dict(sim.state.requests[-1].body)


async def test_repeated_long_prompt_reads_cached_tokens(connect: Connect) -> None:
    provider = connect()
    request = Request.of("What is rule 7?", system=LONG_TEXT)
    first = await provider.complete(request)
    assert first.usage.cache_read_tokens == 0 and first.usage.input_tokens > 1024
    second = await provider.complete(request)
    assert second.usage.cache_read_tokens >= 1024
    # input_tokens are the uncached ones: prompt_tokens minus cached_tokens
    assert second.usage.input_tokens == first.usage.input_tokens - second.usage.cache_read_tokens
    streamed = (await collect(provider.stream(request)))[-1].usage
    assert streamed is not None
    assert streamed.cache_read_tokens == second.usage.cache_read_tokens


async def test_request_translation(connect: Connect, sim: SimServer) -> None:
    provider = connect()
    params = {"temperature": 0.5, "top_p": 0.9, "stop": ["END"], "max_tokens": 20, "seed": 3}
    await collect(provider.stream(Request.of("Hi", system="Be brief", params=params)))
    body = last_body(sim)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Hi"},
    ]
    assert body["max_completion_tokens"] == 20 and "max_tokens" not in body
    assert (body["temperature"], body["top_p"], body["stop"], body["seed"]) == (
        0.5,
        0.9,
        ["END"],
        3,
    )
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    await provider.complete(Request.of("Hi"))
    body = last_body(sim)
    assert not {"max_completion_tokens", "max_tokens", "temperature", "stop"} & body.keys()


async def test_resolves_through_the_registry(sim: SimServer) -> None:
    registry = ProviderRegistry(remote_settings("openai", v1(sim)), Catalog.load())
    provider = registry.resolve("openai:gpt-5-mini")
    try:
        assert isinstance(provider, RetryingProvider)
        assert isinstance(provider.inner, adapter.OpenAIProvider)
        assert provider.spec == "openai:gpt-5-mini"
    finally:
        await registry.aclose()


async def test_compatible_endpoint_resolves_by_its_own_name(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A self-hosted server often has no key: the adapter must not demand OpenAI's.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    vllm = ProviderSettings(kind="openai", base_url=v1(sim), max_retries=0, timeout_s=5)
    registry = ProviderRegistry(Settings(providers={"vllm": vllm}), Catalog.load())
    provider = registry.resolve("vllm:some-model")
    try:
        assert isinstance(provider, RetryingProvider)
        assert isinstance(provider.inner, adapter.OpenAIProvider)
        assert provider.spec == "vllm:some-model"
        completion = await provider.complete(Request.of("Hi", params={"max_tokens": 5}))
        assert completion.provider == "vllm" and completion.model == "some-model"
        body = last_body(sim)
        # compatible servers get the field they all understand
        assert body["max_tokens"] == 5 and "max_completion_tokens" not in body
        assert body["model"] == "some-model"
    finally:
        await registry.aclose()


def test_official_endpoint_without_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        adapter.create("openai", MODEL, Settings())


async def test_tools_and_tool_turns_translation(connect: Connect, sim: SimServer) -> None:
    call = ToolCall(id="call_abc", name="get_weather", arguments='{"city": "Oslo"}')
    request = asking(choice=ToolChoice(mode="tool", name="get_time"), after=answered(call))
    await connect().complete(request)
    body = last_body(sim)
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather ahead",
                "parameters": WEATHER.parameters,
            },
        },
        {
            "type": "function",
            "function": {"name": "get_time", "description": "", "parameters": CLOCK.parameters},
        },
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert body["messages"] == [
        {"role": "user", "content": QUESTION.content},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": "Sunny, 21 degrees."},
    ]
    for mode in ("auto", "none", "required"):
        await connect().complete(asking(choice=ToolChoice(mode=mode)))
        assert last_body(sim)["tool_choice"] == mode


async def test_no_tools_no_tool_fields(connect: Connect, sim: SimServer) -> None:
    # The API refuses a tool_choice without tools; a request may still name "none".
    await connect().complete(Request.of("Hi", tool_choice=ToolChoice(mode="none")))
    assert not {"tools", "tool_choice"} & last_body(sim).keys()


async def test_an_assistant_turn_with_text_and_calls_keeps_both(
    connect: Connect, sim: SimServer
) -> None:
    call = ToolCall(id="call_1", name="get_time", arguments="{}")
    turn = Message(role="assistant", content="Let me look.", tool_calls=(call,))
    tool = Message(role="tool", content="12:00", tool_call_id="call_1")
    await connect().complete(Request(messages=(QUESTION, turn, tool), tools=(CLOCK,)))
    sent = last_body(sim)["messages"]
    assert isinstance(sent, list) and sent[1]["content"] == "Let me look."


async def test_structured_output_follows_the_schema(connect: Connect, sim: SimServer) -> None:
    provider = connect()
    request = Request.of("Forecast, please.", response_schema=Forecast.model_json_schema())
    completion = await provider.complete(request)
    assert len(structured(completion).days) == 2
    assert last_body(sim)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": Forecast.model_json_schema()},
    }
    chunks = await collect(provider.stream(request))
    assert "".join(chunk.text for chunk in chunks) == completion.text


def mocked(reply: bytes, content_type: str = "application/json") -> adapter.OpenAIProvider:
    """The adapter over the real SDK client, whose transport answers ``reply`` to anything."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=reply, headers={"content-type": content_type})

    client = openai.AsyncOpenAI(
        api_key="test-key",
        base_url="http://upstream.test/v1",
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(transport=httpx2.MockTransport(answer)),
    )
    return adapter.OpenAIProvider("openai", MODEL, client)


@pytest.mark.parametrize(
    "reply",
    [
        b'{"choices": "none"}',
        b'{"choices": [{"message": null}]}',
        b'{"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}], "usage": {}}',
        b"[1, 2]",
    ],
)
async def test_a_reply_of_the_wrong_shape_is_unusable(reply: bytes) -> None:
    provider = mocked(reply)
    with pytest.raises(ProviderUnavailable, match="unusable response"):
        await provider.complete(Request.of("Hi"))
    await provider.aclose()


async def test_a_stream_chunk_of_the_wrong_shape_breaks_the_stream() -> None:
    good = b'data: {"choices": [{"delta": {"content": "Hello"}, "finish_reason": null}]}\n\n'
    bad = b'data: {"choices": [{"delta": {"tool_calls": [{"function": {}}]}}]}\n\n'
    provider = mocked(bad, "text/event-stream")
    with pytest.raises(ProviderUnavailable, match="unusable response"):
        await collect(provider.stream(Request.of("Hi")))
    await provider.aclose()
    provider = mocked(good + bad, "text/event-stream")
    with pytest.raises(ProviderUnavailable, match="stream interrupted after 5") as broken:
        await collect(provider.stream(Request.of("Hi")))
    assert broken.value.partial_text == "Hello"
    await provider.aclose()
