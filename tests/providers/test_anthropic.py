from collections.abc import AsyncIterator
from typing import Any, ClassVar

import anthropic
import httpx2
import pytest

from helios.catalog import Catalog
from helios.errors import BadRequest, ProviderUnavailable, RateLimited
from helios.messages import CacheControl, Message, Request, ToolCall, ToolCallDelta, ToolChoice
from helios.providers import anthropic as adapter
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
from tests.providers.remote_tools import CLOCK, QUESTION, WEATHER, ToolContract, asking

# Opus 4.1 caches prefixes from 1024 tokens; Sonnet 4.5 would too, but SDK 2.12 marks it
# deprecated and warns on every call.
MODEL = "claude-opus-4-8"


class TestAnthropicContract(RemoteContract, ToolContract):
    kind = "anthropic"
    model = MODEL
    factory: ClassVar[Factory] = staticmethod(adapter.create)
    overloaded_status = 529
    key_variables = ("ANTHROPIC_API_KEY",)
    sdk_module = "anthropic"
    extra = "anthropic"


@pytest.fixture
async def connect(sim: SimServer) -> AsyncIterator[Connect]:
    async with connector(sim, "anthropic", MODEL, adapter.create, sim.base_url) as connect:
        yield connect


def last_body(sim: SimServer) -> dict[str, object]:
    return dict(sim.state.requests[-1].body)


async def test_cached_system_prompt_is_written_then_read(connect: Connect, sim: SimServer) -> None:
    provider = connect()
    request = Request.of("First question", system=LONG_TEXT, system_cache=CacheControl())
    first = await provider.complete(request)
    assert first.usage.cache_write_5m_tokens > 1024
    assert first.usage.cache_read_tokens == first.usage.cache_write_1h_tokens == 0
    second = await provider.complete(request)
    assert second.usage.cache_read_tokens == first.usage.cache_write_5m_tokens
    assert second.usage.cache_write_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens
    assert second.usage.total_input_tokens == first.usage.total_input_tokens
    system = last_body(sim)["system"]
    assert system == [
        {"type": "text", "text": LONG_TEXT, "cache_control": {"type": "ephemeral", "ttl": "5m"}}
    ]


async def test_streamed_usage_reports_cache_reads_and_one_hour_writes(
    connect: Connect,
) -> None:
    provider = connect()
    request = Request(
        messages=(
            Message(role="user", content=LONG_TEXT, cache=CacheControl(ttl="1h")),
            Message(role="assistant", content="Noted."),
            Message(role="user", content="Now answer."),
        )
    )
    first = (await collect(provider.stream(request)))[-1].usage
    assert first is not None
    assert first.cache_write_1h_tokens > 1024 and first.cache_write_5m_tokens == 0
    second = (await collect(provider.stream(request)))[-1].usage
    assert second is not None
    assert second.cache_read_tokens == first.cache_write_1h_tokens
    assert second.cache_write_tokens == 0
    assert second.output_tokens > 1


async def test_request_translation(connect: Connect, sim: SimServer) -> None:
    provider = connect()
    request = Request.of(
        "Hi", system="Be brief", params={"temperature": 0.2, "stop": ["END"], "max_tokens": 50}
    )
    await provider.complete(request)
    body = last_body(sim)
    assert body["model"] == MODEL
    assert body["system"] == "Be brief"
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["max_tokens"] == 50
    assert body["stop_sequences"] == ["END"]
    assert body["temperature"] == 0.2
    assert "top_p" not in body
    await provider.complete(Request.of("Hi"))
    body = last_body(sim)
    assert body["max_tokens"] == adapter.DEFAULT_MAX_TOKENS
    assert not {"system", "temperature", "stop_sequences"} & body.keys()


async def test_resolves_through_the_registry(sim: SimServer) -> None:
    settings = remote_settings("anthropic", sim.base_url)
    registry = ProviderRegistry(settings, Catalog.load())
    provider = registry.resolve("anthropic:sonnet")
    try:
        assert isinstance(provider, RetryingProvider)
        assert isinstance(provider.inner, adapter.AnthropicProvider)
        assert provider.spec == "anthropic:claude-sonnet-5-5"
    finally:
        await registry.aclose()


@pytest.mark.parametrize(
    ("error_type", "expected", "status"),
    [("overloaded_error", ProviderUnavailable, 529), ("rate_limit_error", RateLimited, 429)],
)
async def test_error_events_inside_a_stream_are_mapped_by_their_type(
    error_type: str, expected: type[Exception], status: int
) -> None:
    # An `event: error` arrives on a 200 response, so its type is all there is to go on.
    settings = remote_settings("anthropic", "http://127.0.0.1:9")
    wrapped = adapter.create("anthropic", MODEL, settings)
    assert isinstance(wrapped, RetryingProvider)
    provider = wrapped.inner
    assert isinstance(provider, adapter.AnthropicProvider)
    response = httpx2.Response(
        200, request=httpx2.Request("POST", "http://127.0.0.1:9/v1/messages")
    )
    body = {"type": "error", "error": {"type": error_type, "message": "Overloaded"}}
    error = anthropic.APIStatusError("stream error", response=response, body=body)
    try:
        translated = provider._translate(error)
    finally:
        await provider.aclose()
    assert isinstance(translated, expected)
    assert translated.status_code == status
    assert str(translated).endswith("Overloaded")


async def test_tools_translation(connect: Connect, sim: SimServer) -> None:
    provider = connect()
    await provider.complete(asking(choice=ToolChoice(mode="tool", name="get_time")))
    body = last_body(sim)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER.parameters,
            "description": "The weather ahead",
        },
        {"name": "get_time", "input_schema": CLOCK.parameters},
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "get_time"}
    expected = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}
    for mode, sent in expected.items():
        await provider.complete(asking(choice=ToolChoice(mode=mode)))
        assert last_body(sim)["tool_choice"] == sent
    await provider.complete(Request.of("Hi", tool_choice=ToolChoice(mode="none")))
    assert not {"tools", "tool_choice"} & last_body(sim).keys()


async def test_tool_turns_alternate_and_keep_cache_breakpoints(
    connect: Connect, sim: SimServer
) -> None:
    calls = (
        ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Oslo"}'),
        ToolCall(id="toolu_2", name="get_time", arguments=""),
    )
    request = Request(
        messages=(
            QUESTION,
            Message(role="assistant", content="Looking.", tool_calls=calls),
            Message(role="tool", content="Sunny.", tool_call_id="toolu_1"),
            Message(role="tool", content="12:00", tool_call_id="toolu_2", cache=CacheControl()),
            Message(role="user", content="And tomorrow?"),
        ),
        tools=(WEATHER, CLOCK),
        system="Be brief",
        system_cache=CacheControl(ttl="1h"),
    )
    completion = await connect().complete(request)
    assert completion.text and not completion.tool_calls  # the last turn holds results
    body = last_body(sim)
    assert body["system"] == [
        {"type": "text", "text": "Be brief", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    assert body["messages"] == [
        {"role": "user", "content": QUESTION.content},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny."},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": "12:00",
                    "cache_control": {"type": "ephemeral", "ttl": "5m"},
                },
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]


async def test_an_assistant_breakpoint_marks_its_last_tool_use(
    connect: Connect, sim: SimServer
) -> None:
    call = ToolCall(id="toolu_1", name="get_time", arguments="{}")
    turn = Message(role="assistant", content="", tool_calls=(call,), cache=CacheControl())
    result = Message(role="tool", content="12:00", tool_call_id="toolu_1")
    await connect().complete(Request(messages=(QUESTION, turn, result), tools=(CLOCK,)))
    sent = last_body(sim)["messages"]
    assert isinstance(sent, list)
    assert sent[1]["content"] == [
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "get_time",
            "input": {},
            "cache_control": {"type": "ephemeral", "ttl": "5m"},
        }
    ]


async def test_arguments_that_are_no_json_object_are_refused(connect: Connect) -> None:
    call = ToolCall(id="toolu_1", name="get_time", arguments="[1, 2]")
    turn = Message(role="assistant", content="", tool_calls=(call,))
    result = Message(role="tool", content="12:00", tool_call_id="toolu_1")
    with pytest.raises(BadRequest, match="not a JSON object"):
        await connect().complete(Request(messages=(QUESTION, turn, result), tools=(CLOCK,)))


def test_a_streamed_call_without_input_gets_empty_arguments() -> None:
    blocks = adapter._BlockChunks()
    use = {"type": "tool_use", "id": "toolu_9", "name": "get_time", "input": {}}
    events: list[dict[str, Any]] = [
        {"type": "content_block_start", "index": 1, "content_block": use},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {"type": "content_block_stop", "index": 1},
    ]
    deltas = [
        delta
        for event in events
        for c in blocks.chunks(event["type"], event)
        for delta in c.tool_calls
    ]
    assert deltas == [
        ToolCallDelta(index=0, id="toolu_9", name="get_time"),
        ToolCallDelta(index=0, arguments="{}"),
    ]


def mocked(reply: bytes, content_type: str = "application/json") -> adapter.AnthropicProvider:
    """The adapter over the real SDK client, whose transport answers ``reply`` to anything."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=reply, headers={"content-type": content_type})

    client = anthropic.AsyncAnthropic(
        api_key="test-key",
        base_url="http://upstream.test",
        max_retries=0,
        http_client=anthropic.DefaultAsyncHttpxClient(transport=httpx2.MockTransport(answer)),
    )
    return adapter.AnthropicProvider("anthropic", MODEL, client)


@pytest.mark.parametrize(
    "reply",
    [
        b'{"content": [{"type": "text"}], "usage": {"input_tokens": 1, "output_tokens": 1}}',
        b'{"content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn"}',
        b'{"content": "hi", "usage": {"input_tokens": 1, "output_tokens": 1}}',
        b"[1, 2]",
    ],
)
async def test_a_reply_of_the_wrong_shape_is_unusable(reply: bytes) -> None:
    provider = mocked(reply)
    with pytest.raises(ProviderUnavailable, match="unusable response"):
        await provider.complete(Request.of("Hi"))
    await provider.aclose()


def sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


async def test_a_stream_event_of_the_wrong_shape_breaks_the_stream() -> None:
    start = sse(
        "message_start",
        '{"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 0}}}',
    )
    text = sse(
        "content_block_delta",
        '{"type": "content_block_delta", "index": 0,'
        ' "delta": {"type": "text_delta", "text": "Hello"}}',
    )
    bad = sse("content_block_delta", '{"type": "content_block_delta", "index": 0}')
    provider = mocked(start + bad, "text/event-stream")
    with pytest.raises(ProviderUnavailable, match="unusable response"):
        await collect(provider.stream(Request.of("Hi")))
    await provider.aclose()
    provider = mocked(start + text + bad, "text/event-stream")
    with pytest.raises(ProviderUnavailable, match="stream interrupted after 5") as broken:
        await collect(provider.stream(Request.of("Hi")))
    assert broken.value.partial_text == "Hello"
    await provider.aclose()
