"""Fault injection: error kinds, drops, timeouts, and the three ways to ask for them."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from helios.sim import Fault, SimServer

PROTOCOLS = ["anthropic", "openai", "gemini"]
DROP = {"x-sim-fault": "drop;after_chunks=3"}
MESSAGES: list[Any] = [{"role": "user", "content": "Describe the sea."}]

# (status, error type) per kind and protocol; Gemini's "type" is its status string.
ERRORS: dict[str, dict[str, tuple[int, str]]] = {
    "rate_limit": {
        "anthropic": (429, "rate_limit_error"),
        "openai": (429, "requests"),
        "gemini": (429, "RESOURCE_EXHAUSTED"),
    },
    "server_error": {
        "anthropic": (500, "api_error"),
        "openai": (500, "server_error"),
        "gemini": (500, "INTERNAL"),
    },
    "overloaded": {
        "anthropic": (529, "overloaded_error"),
        "openai": (503, "server_error"),
        "gemini": (503, "UNAVAILABLE"),
    },
    "auth": {
        "anthropic": (401, "authentication_error"),
        "openai": (401, "invalid_request_error"),
        "gemini": (401, "UNAUTHENTICATED"),
    },
    "bad_request": {
        "anthropic": (400, "invalid_request_error"),
        "openai": (400, "invalid_request_error"),
        "gemini": (400, "INVALID_ARGUMENT"),
    },
}


def error_type(protocol: str, body: dict[str, Any]) -> str:
    if protocol == "anthropic":
        assert body["type"] == "error"
        return str(body["error"]["type"])
    if protocol == "openai":
        assert set(body["error"]) >= {"message", "type", "code"}
        return str(body["error"]["type"])
    return str(body["error"]["status"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", sorted(ERRORS))
def test_error_kinds_use_each_protocol_status_and_body(
    sim: SimServer, wire: Any, protocol: str, kind: str
) -> None:
    sim.state.inject(Fault.model_validate({"kind": kind}))
    response = wire.post(protocol)
    assert (response.status_code, error_type(protocol, response.json())) == ERRORS[kind][protocol]
    assert wire.post(protocol).status_code == 200  # consumed by the first request


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_rate_limit_sends_retry_after(sim: SimServer, wire: Any, protocol: str) -> None:
    sim.state.inject(Fault(kind="rate_limit", retry_after_s=2.5))
    response = wire.post(protocol)
    assert response.headers["retry-after"] == "2.5"
    if protocol == "gemini":
        [detail] = response.json()["error"]["details"]
        assert detail["retryDelay"] == "2.5s"


def test_sdk_exceptions(
    anthropic_client: anthropic.Anthropic, openai_client: openai.OpenAI, gemini_client: genai.Client
) -> None:
    def ask_anthropic(fault: str) -> object:
        return anthropic_client.messages.create(
            model="claude-opus-4-8",
            max_tokens=10,
            messages=MESSAGES,
            extra_headers={"x-sim-fault": fault},
        )

    def ask_openai(fault: str) -> object:
        return openai_client.chat.completions.create(
            model="gpt-5", messages=MESSAGES, extra_headers={"x-sim-fault": fault}
        )

    def ask_gemini(fault: str) -> object:
        options = types.HttpOptions(headers={"x-sim-fault": fault})
        return gemini_client.models.generate_content(
            model="gemini-2.5-flash",
            contents="Hi",
            config=types.GenerateContentConfig(http_options=options),
        )

    with pytest.raises(anthropic.RateLimitError) as limited:
        ask_anthropic("rate_limit;retry_after=3")
    assert limited.value.response.headers["retry-after"] == "3"
    with pytest.raises(anthropic.OverloadedError):
        ask_anthropic("overloaded")
    with pytest.raises(anthropic.InternalServerError):
        ask_anthropic("server_error")
    with pytest.raises(openai.RateLimitError):
        ask_openai("rate_limit")
    with pytest.raises(openai.InternalServerError) as overloaded:
        ask_openai("overloaded")
    assert overloaded.value.status_code == 503
    with pytest.raises(genai_errors.ClientError) as exhausted:
        ask_gemini("rate_limit")
    assert (exhausted.value.code, exhausted.value.status) == (429, "RESOURCE_EXHAUSTED")
    with pytest.raises(genai_errors.ServerError) as unavailable:
        ask_gemini("overloaded")
    assert unavailable.value.code == 503


def test_sdk_retries_honour_retry_after(sim: SimServer) -> None:
    sim.state.inject(Fault(kind="rate_limit", retry_after_s=0.05), times=2)
    with anthropic.Anthropic(base_url=sim.base_url, api_key="sim", max_retries=2) as client:
        message = client.messages.create(model="claude-opus-4-8", max_tokens=5, messages=MESSAGES)
    assert message.stop_reason == "max_tokens"
    assert sim.state.stats.requests == {"anthropic": 3}
    assert sim.state.stats.faults_fired == {"rate_limit": 2}


def not_a_timeout(exc: BaseException) -> bool:
    return not isinstance(
        exc,
        (
            httpx2.TimeoutException,
            anthropic.APITimeoutError,
            openai.APITimeoutError,
            TimeoutError,
        ),
    )


def test_drop_mid_stream_anthropic(anthropic_client: anthropic.Anthropic) -> None:
    received: list[str] = []
    with pytest.raises((httpx2.TransportError, anthropic.APIConnectionError)) as dropped:
        stream = anthropic_client.messages.create(
            model="claude-opus-4-8",
            max_tokens=50,
            messages=MESSAGES,
            stream=True,
            extra_headers=DROP,
        )
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                received.append(event.delta.text)
    assert len(received) == 3
    assert not_a_timeout(dropped.value)


def test_drop_mid_stream_openai(openai_client: openai.OpenAI) -> None:
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError) as dropped:
        stream = openai_client.chat.completions.create(
            model="gpt-5", messages=MESSAGES, stream=True, extra_headers=DROP
        )
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert len("".join(received).split()) == 3
    assert not_a_timeout(dropped.value)


def test_drop_mid_stream_gemini(gemini_client: genai.Client) -> None:
    received: list[str] = []
    config = types.GenerateContentConfig(http_options=types.HttpOptions(headers=DROP))
    with pytest.raises(httpx2.TransportError) as dropped:
        for chunk in gemini_client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Hi", config=config
        ):
            received.append(chunk.text or "")
    assert len(received) == 3
    assert not_a_timeout(dropped.value)


async def test_drop_mid_stream_async_clients(
    async_anthropic_client: anthropic.AsyncAnthropic,
    async_openai_client: openai.AsyncOpenAI,
    async_gemini_client: Any,
) -> None:
    with pytest.raises((httpx2.TransportError, anthropic.APIConnectionError)) as a_dropped:
        async with async_anthropic_client.messages.stream(
            model="claude-opus-4-8", max_tokens=50, messages=MESSAGES, extra_headers=DROP
        ) as stream:
            async for _ in stream.text_stream:
                pass
    with pytest.raises(openai.APIConnectionError) as o_dropped:
        chunks = await async_openai_client.chat.completions.create(
            model="gpt-5", messages=MESSAGES, stream=True, extra_headers=DROP
        )
        async for _ in chunks:
            pass
    config = types.GenerateContentConfig(http_options=types.HttpOptions(headers=DROP))
    # google-genai's async client sends through aiohttp when it is installed, else httpx2
    with pytest.raises((httpx2.TransportError, aiohttp.ClientError)) as g_dropped:
        async for _ in await async_gemini_client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Hi", config=config
        ):
            pass
    assert all(not_a_timeout(e.value) for e in (a_dropped, o_dropped, g_dropped))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_drop_of_a_plain_reply_sends_headers_only(sim: SimServer, wire: Any, protocol: str) -> None:
    with pytest.raises(httpx2.RemoteProtocolError):
        wire.post(protocol, headers={"x-sim-fault": "drop"})
    assert wire.post(protocol).status_code == 200
    assert sim.state.stats.faults_fired == {"drop": 1}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_drop_after_zero_chunks_sends_only_the_preamble(wire: Any, protocol: str) -> None:
    path, body = wire.path(protocol, stream=True), wire.body(protocol, stream=True)
    headers = {"x-sim-fault": "drop;after_chunks=0"}
    with wire.client.stream("POST", path, json=body, headers=headers) as response:
        assert response.status_code == 200
        with pytest.raises(httpx2.RemoteProtocolError):
            response.read()


def test_timeout_delays_then_answers(wire: Any) -> None:
    started = time.monotonic()
    response = wire.post("openai", headers={"x-sim-fault": "timeout;seconds=0.3"})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.25


def test_timeout_longer_than_the_client_waits(sim: SimServer) -> None:
    sim.state.inject(Fault(kind="timeout", seconds=60))
    with (
        anthropic.Anthropic(
            base_url=sim.base_url, api_key="sim", max_retries=0, timeout=0.3
        ) as client,
        pytest.raises(anthropic.APITimeoutError),
    ):
        client.messages.create(model="claude-opus-4-8", max_tokens=5, messages=MESSAGES)
    # The server let the abandoned request go and still answers.
    with anthropic.Anthropic(base_url=sim.base_url, api_key="sim", max_retries=0) as client:
        assert client.messages.create(
            model="claude-opus-4-8", max_tokens=5, messages=MESSAGES
        ).content


def test_queue_filters_by_protocol_and_counts_down(sim: SimServer, wire: Any) -> None:
    sim.state.inject(Fault(kind="server_error"), times=2, protocol="gemini")
    assert wire.post("anthropic").status_code == 200
    assert [wire.post("gemini").status_code for _ in range(3)] == [500, 500, 200]
    assert sim.state.pending_faults == 0


def test_faults_without_a_count_fire_until_reset(sim: SimServer, wire: Any) -> None:
    sim.state.inject(Fault(kind="overloaded"), times=None)
    assert [wire.post("openai").status_code for _ in range(3)] == [503, 503, 503]
    sim.state.reset()
    assert wire.post("openai").status_code == 200


def test_header_fault_wins_and_leaves_the_queue(sim: SimServer, wire: Any) -> None:
    sim.state.inject(Fault(kind="rate_limit"))
    assert wire.post("anthropic", headers={"x-sim-fault": "server_error"}).status_code == 500
    assert wire.post("anthropic").status_code == 429


@pytest.mark.parametrize("header", ["explode", "drop;after_chunks", "timeout;seconds=soon"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_malformed_fault_header_is_a_bad_request(wire: Any, protocol: str, header: str) -> None:
    response = wire.post(protocol, headers={"x-sim-fault": header})
    assert response.status_code == 400
    assert error_type(protocol, response.json()) == ERRORS["bad_request"][protocol][1]


def test_control_routes(http: httpx2.Client, wire: Any) -> None:
    order = {"kind": "server_error", "times": 2, "protocol": "openai", "message": "boom"}
    assert http.post("/_sim/faults", json=order).status_code == 200
    assert wire.post("anthropic").status_code == 200
    first = wire.post("openai")
    assert first.json()["error"]["message"] == "boom"
    assert [
        first.status_code,
        wire.post("openai").status_code,
        wire.post("openai").status_code,
    ] == [
        500,
        500,
        200,
    ]
    stats = http.get("/_sim/stats").json()
    assert stats["requests"] == {"anthropic": 1, "openai": 3}
    assert stats["faults_fired"] == {"server_error": 2}
    assert stats["total_requests"] == 4
    assert stats["pending_faults"] == 0
    assert len(http.get("/_sim/requests").json()) == 4

    assert http.post("/_sim/reset").json() == {"reset": True}
    assert http.get("/_sim/stats").json()["total_requests"] == 0


@pytest.mark.parametrize(
    "order", [{"kind": "meteor"}, {"kind": "drop", "times": 0}, {"kind": "drop", "protocol": "x"}]
)
def test_control_route_rejects_bad_orders(http: httpx2.Client, order: dict[str, Any]) -> None:
    assert http.post("/_sim/faults", json=order).status_code == 400


def test_fault_parse() -> None:
    assert Fault.parse("rate_limit;retry_after=1.5") == Fault(kind="rate_limit", retry_after_s=1.5)
    assert Fault.parse(" drop ; after_chunks = 3 ") == Fault(kind="drop", after_chunks=3)
    assert Fault.parse("timeout;seconds=5") == Fault(kind="timeout", seconds=5)
    with pytest.raises(ValueError, match="after_chunks"):
        Fault.parse("drop;after_chunks=-1")


def test_inject_rejects_a_zero_count(sim: SimServer) -> None:
    with pytest.raises(ValueError, match="times"):
        sim.state.inject(Fault(kind="drop"), times=0)
