"""The contract every remote adapter passes against the provider simulator.

Each adapter's test module subclasses :class:`RemoteContract`, naming its kind, a model and
how the SDK reaches the simulator; the tests here then run through the official SDK and
the simulator's real wire protocol.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import ClassVar

import pytest
from pydantic import SecretStr

from helios.catalog import Catalog
from helios.config.providers import ProviderSettings
from helios.config.settings import Settings
from helios.errors import (
    AuthenticationError,
    BadRequest,
    MissingDependency,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from helios.messages import Chunk, Request
from helios.providers.base import Provider
from helios.providers.registry import ProviderRegistry
from helios.sim import Fault, LatencyProfile, SimServer

# About 1,700 simulator tokens (4 characters each): above every 1024-token cache minimum.
LONG_TEXT = " ".join(
    f"Rule {number}: answer plainly, cite the source, keep the reply short."
    for number in range(100)
)

Factory = Callable[[str, str, Settings], Provider]
Connect = Callable[..., Provider]


def remote_settings(
    name: str,
    base_url: str,
    *,
    api_key: str | None = "test-key",
    max_retries: int = 0,
    timeout_s: float = 5.0,
    headers: dict[str, str] | None = None,
    first_token_timeout_s: float | None = 30.0,
) -> Settings:
    provider = ProviderSettings.model_validate(
        {
            "base_url": base_url,
            "api_key": SecretStr(api_key) if api_key is not None else None,
            "max_retries": max_retries,
            "timeout_s": timeout_s,
            "first_token_timeout_s": first_token_timeout_s,
            "headers": headers or {},
        }
    )
    return Settings(providers={name: provider})


async def drain(stream: AsyncIterator[Chunk], into: list[Chunk]) -> None:
    async for chunk in stream:
        into.append(chunk)


async def collect(stream: AsyncIterator[Chunk], timeout_s: float = 10.0) -> list[Chunk]:
    """Every chunk of a stream, failing the test instead of hanging."""
    chunks: list[Chunk] = []
    await asyncio.wait_for(drain(stream, chunks), timeout_s)
    return chunks


def joined(chunks: list[Chunk]) -> str:
    return "".join(chunk.text for chunk in chunks)


@asynccontextmanager
async def connector(
    sim: SimServer, name: str, model: str, factory: Factory, base_url: str
) -> AsyncIterator[Connect]:
    """Build providers on the simulator; each is closed on the way out."""
    made: list[Provider] = []

    def connect(*, max_retries: int = 0, timeout_s: float = 5.0) -> Provider:
        settings = remote_settings(name, base_url, max_retries=max_retries, timeout_s=timeout_s)
        provider = factory(name, model, settings)
        made.append(provider)
        return provider

    try:
        yield connect
    finally:
        for provider in made:
            await provider.aclose()


class RemoteContract:
    """Behaviour shared by the Anthropic, OpenAI and Gemini adapters.

    A subclass names the adapter; its module provides the ``connect`` fixture (see
    :func:`connector`).
    """

    kind: ClassVar[str]
    model: ClassVar[str]
    factory: ClassVar[Factory]
    overloaded_status: ClassVar[int] = 503
    key_variables: ClassVar[tuple[str, ...]]
    sdk_module: ClassVar[str]
    extra: ClassVar[str]

    @classmethod
    def base_url(cls, sim: SimServer) -> str:
        return sim.base_url

    def requests_served(self, sim: SimServer) -> int:
        return sim.state.stats.requests.get(self.kind, 0)

    async def test_complete(self, connect: Connect) -> None:
        provider = connect()
        completion = await provider.complete(Request.of("Say something", system="Be brief"))
        assert completion.text
        assert completion.provider == self.kind and completion.model == self.model
        assert completion.finish_reason == "stop"
        assert completion.usage.input_tokens > 0
        assert completion.usage.output_tokens == len(completion.text.split())
        assert completion.usage.cache_read_tokens == completion.usage.cache_write_tokens == 0

    async def test_stream_gives_the_same_text_and_usage_as_complete(self, connect: Connect) -> None:
        provider = connect()
        request = Request.of("Say something", system="Be brief")
        completion = await provider.complete(request)
        chunks = await collect(provider.stream(request))
        *text_chunks, last = chunks
        assert joined(chunks) == completion.text
        assert len(text_chunks) > 1 and all(c.text and c.usage is None for c in text_chunks)
        assert last.text == "" and last.finish_reason == "stop"
        assert last.usage == completion.usage

    async def test_max_tokens_cuts_the_reply(self, connect: Connect) -> None:
        request = Request.of("Say something", params={"max_tokens": 3})
        completion = await connect().complete(request)
        assert completion.finish_reason == "length"
        assert completion.usage.output_tokens == 3

    async def test_rate_limit_is_retried_after_retry_after(
        self, connect: Connect, sim: SimServer
    ) -> None:
        provider = connect(max_retries=1)
        sim.state.inject(Fault(kind="rate_limit", retry_after_s=0.3), times=1)
        started = time.monotonic()
        completion = await provider.complete(Request.of("Hello"))
        assert completion.text
        assert self.requests_served(sim) == 2
        assert time.monotonic() - started >= 0.25  # it waited as told, not its own backoff

    async def test_streams_are_retried_before_the_first_chunk(
        self, connect: Connect, sim: SimServer
    ) -> None:
        provider = connect(max_retries=1)
        sim.state.inject(Fault(kind="rate_limit", retry_after_s=0.1), times=1)
        chunks = await collect(provider.stream(Request.of("Hello")))
        assert joined(chunks) and chunks[-1].finish_reason == "stop"
        assert self.requests_served(sim) == 2

    async def test_exhausted_retries_raise_rate_limited_with_retry_after(
        self, connect: Connect, sim: SimServer
    ) -> None:
        provider = connect(max_retries=0)
        sim.state.inject(Fault(kind="rate_limit", retry_after_s=7), times=1)
        with pytest.raises(RateLimited) as info:
            await provider.complete(Request.of("Hello"))
        assert info.value.retry_after == pytest.approx(7)
        assert info.value.provider == self.kind and info.value.model == self.model

    async def test_a_retry_after_beyond_the_cap_goes_straight_to_the_caller(
        self, connect: Connect, sim: SimServer
    ) -> None:
        # max_retry_wait_s defaults to 60 s: an hour-long wait is the caller's decision.
        provider = connect(max_retries=3)
        sim.state.inject(Fault(kind="rate_limit", retry_after_s=3600), times=1)
        with pytest.raises(RateLimited) as info:
            await asyncio.wait_for(provider.complete(Request.of("Hello")), timeout=10)
        assert info.value.retry_after == pytest.approx(3600)
        assert self.requests_served(sim) == 1

    @pytest.mark.parametrize("kind", ["server_error", "overloaded"])
    async def test_server_errors_raise_provider_unavailable(
        self, connect: Connect, sim: SimServer, kind: str
    ) -> None:
        provider = connect(max_retries=0)
        sim.state.inject(Fault.model_validate({"kind": kind}), times=2)
        with pytest.raises(ProviderUnavailable) as info:
            await provider.complete(Request.of("Hello"))
        assert info.value.status_code == (500 if kind == "server_error" else self.overloaded_status)
        with pytest.raises(ProviderUnavailable):
            await collect(provider.stream(Request.of("Hello")))

    async def test_a_dropped_stream_keeps_the_partial_text(
        self, connect: Connect, sim: SimServer
    ) -> None:
        provider = connect(max_retries=0)  # no retry left: the break is the caller's
        sim.state.inject(Fault(kind="drop", after_chunks=3), times=1)
        received: list[Chunk] = []
        with pytest.raises(ProviderUnavailable) as info:
            await asyncio.wait_for(drain(provider.stream(Request.of("Hello")), received), 10)
        assert len(received) == 3
        assert info.value.partial_text == joined(received)
        assert self.requests_served(sim) == 1

    async def test_a_dropped_stream_starts_over_after_a_restart_marker(
        self, connect: Connect, sim: SimServer
    ) -> None:
        whole = joined(await collect(connect().stream(Request.of("Hello"))))
        provider = connect(max_retries=2)
        sim.state.inject(Fault(kind="drop", after_chunks=3), times=1)
        chunks = await collect(provider.stream(Request.of("Hello")))
        [restart] = [index for index, chunk in enumerate(chunks) if chunk.restart is not None]
        assert restart == 3  # after the three chunks the first attempt sent
        marker = chunks[restart]
        assert not marker.text and "attempt 1 of 3 failed: stream interrupted" in (
            marker.restart or ""
        )
        assert joined(chunks[restart + 1 :]) == whole
        assert chunks[-1].finish_reason == "stop"
        assert self.requests_served(sim) == 3

    async def test_a_stream_with_no_first_token_fails_after_the_first_token_timeout(
        self, sim: SimServer
    ) -> None:
        settings = remote_settings(
            self.kind, self.base_url(sim), max_retries=2, timeout_s=30, first_token_timeout_s=0.2
        )
        provider = type(self).factory(self.kind, self.model, settings)
        sim.state.inject(Fault(kind="stall", seconds=30), times=None)
        try:
            with pytest.raises(ProviderTimeout) as info:
                await collect(provider.stream(Request.of("Hello")), timeout_s=20)
        finally:
            await provider.aclose()
        assert str(info.value) == (
            f"{self.kind}:{self.model}: no first token within 0.2 s on 3 attempts"
        )
        assert self.requests_served(sim) == 3

    async def test_a_stream_stalling_midway_keeps_the_partial_text(
        self, make_sim: Callable[..., SimServer]
    ) -> None:
        stalling = make_sim(latency=LatencyProfile(ttft_s=0.0, tokens_per_s=1.0))
        settings = remote_settings(self.kind, self.base_url(stalling), timeout_s=0.3)
        provider = type(self).factory(self.kind, self.model, settings)
        received: list[Chunk] = []
        try:
            with pytest.raises(ProviderUnavailable) as info:
                await asyncio.wait_for(drain(provider.stream(Request.of("Hello")), received), 10)
        finally:
            await provider.aclose()
        assert received and info.value.partial_text == joined(received)

    async def test_a_dropped_reply_raises_provider_unavailable(
        self, connect: Connect, sim: SimServer
    ) -> None:
        provider = connect(max_retries=0)
        sim.state.inject(Fault(kind="drop"), times=1)
        with pytest.raises(ProviderUnavailable):
            await asyncio.wait_for(provider.complete(Request.of("Hello")), 10)

    async def test_a_slow_answer_raises_provider_timeout(
        self, connect: Connect, sim: SimServer
    ) -> None:
        provider = connect(max_retries=0, timeout_s=0.3)
        sim.state.inject(Fault(kind="timeout", seconds=2), times=2)
        with pytest.raises(ProviderTimeout):
            await asyncio.wait_for(provider.complete(Request.of("Hello")), 10)
        with pytest.raises(ProviderTimeout):
            await collect(provider.stream(Request.of("Hello")))

    async def test_a_port_nobody_listens_on_is_a_connection_failure_not_a_timeout(
        self, sim: SimServer
    ) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = sock.getsockname()[1]
        base_url = self.base_url(sim).replace(f":{sim.port}", f":{closed}")
        settings = remote_settings(self.kind, base_url, timeout_s=5)
        provider = type(self).factory(self.kind, self.model, settings)
        try:
            for call in (
                provider.complete(Request.of("Hello")),
                collect(provider.stream(Request.of("Hello"))),
            ):
                with pytest.raises(ProviderUnavailable) as info:
                    await asyncio.wait_for(call, 10)
                assert not isinstance(info.value, ProviderTimeout)
                assert "connect" in str(info.value).lower()
        finally:
            await provider.aclose()

    async def test_a_rejected_key_raises_authentication_error(
        self, connect: Connect, sim: SimServer
    ) -> None:
        provider = connect(max_retries=2)  # not retried: it cannot help
        sim.state.inject(Fault(kind="auth"), times=1)
        with pytest.raises(AuthenticationError) as info:
            await provider.complete(Request.of("Hello"))
        assert info.value.status_code == 401
        assert self.requests_served(sim) == 1

    async def test_a_refused_request_raises_bad_request(
        self, connect: Connect, sim: SimServer
    ) -> None:
        provider = connect(max_retries=2)
        sim.state.inject(Fault(kind="bad_request"), times=1)
        with pytest.raises(BadRequest) as info:
            await collect(provider.stream(Request.of("Hello")))
        assert info.value.status_code == 400
        assert self.requests_served(sim) == 1

    async def test_a_missing_key_is_reported_at_creation(
        self, sim: SimServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for variable in self.key_variables:
            monkeypatch.delenv(variable, raising=False)
        settings = remote_settings(self.kind, self.base_url(sim), api_key=None)
        with pytest.raises(AuthenticationError) as info:
            type(self).factory(self.kind, self.model, settings)
        message = str(info.value)
        assert all(variable in message for variable in self.key_variables)
        assert f"providers.{self.kind}.api_key" in message
        assert "\n" not in message

    async def test_the_key_can_come_from_the_environment(
        self, sim: SimServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(self.key_variables[0], "from-env")
        settings = remote_settings(self.kind, self.base_url(sim), api_key=None)
        provider = type(self).factory(self.kind, self.model, settings)
        try:
            assert (await provider.complete(Request.of("Hello"))).text
        finally:
            await provider.aclose()

    def test_a_missing_sdk_names_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        adapter_module = f"helios.providers.{self.kind}"
        # As if the SDK were not installed, and the adapter not imported yet.
        monkeypatch.setitem(sys.modules, self.sdk_module, None)
        parent, _, child = self.sdk_module.rpartition(".")
        if parent:
            monkeypatch.delattr(sys.modules[parent], child, raising=False)
        monkeypatch.delitem(sys.modules, adapter_module, raising=False)
        registry = ProviderRegistry(
            remote_settings(self.kind, "http://127.0.0.1:9"), Catalog.load()
        )
        with pytest.raises(MissingDependency) as info:
            registry.resolve(f"{self.kind}:{self.model}")
        assert f"helios[{self.extra}]" in str(info.value)

    async def test_configured_headers_are_sent(self, sim: SimServer) -> None:
        settings = remote_settings(self.kind, self.base_url(sim), headers={"x-team": "helios"})
        provider = type(self).factory(self.kind, self.model, settings)
        try:
            await provider.complete(Request.of("Hello"))
        finally:
            await provider.aclose()
        assert sim.state.requests[-1].headers.get("x-team") == "helios"

    async def test_a_stream_left_early_can_be_closed(self, connect: Connect) -> None:
        stream = connect().stream(Request.of("Hello"))
        first = await anext(aiter(stream))
        assert first.text
        closer: Callable[[], Awaitable[None]] | None = getattr(stream, "aclose", None)
        assert closer is not None
        await closer()
