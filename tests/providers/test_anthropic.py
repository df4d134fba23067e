from collections.abc import AsyncIterator
from typing import ClassVar

import anthropic
import httpx2
import pytest

from helios.catalog import Catalog
from helios.errors import ProviderUnavailable, RateLimited
from helios.messages import CacheControl, Message, Request
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

# Opus 4.1 caches prefixes from 1024 tokens; Sonnet 4.5 would too, but SDK 2.12 marks it
# deprecated and warns on every call.
MODEL = "claude-opus-4-8"


class TestAnthropicContract(RemoteContract):
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
