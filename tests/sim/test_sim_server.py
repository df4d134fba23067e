"""SimServer, create_app and the package's public names."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest

import helios.sim
from helios.sim import Fault, LatencyProfile, SimConfig, SimServer, SimState, create_app


def test_public_names() -> None:
    for name in (
        "SimConfig",
        "LatencyProfile",
        "Fault",
        "SimState",
        "create_app",
        "SimServer",
        "serve",
    ):
        assert name in helios.sim.__all__


def test_base_url_needs_a_running_server() -> None:
    server = SimServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    with server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.port > 0
    with pytest.raises(RuntimeError):
        _ = server.base_url


def test_starting_twice_is_an_error(make_sim: Callable[..., SimServer]) -> None:
    server = make_sim()
    with pytest.raises(RuntimeError, match="already running"):
        server.start()


async def test_async_context_manager() -> None:
    body = {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}
    server = SimServer(SimConfig(reply_tokens=3))
    async with server, httpx2.AsyncClient(base_url=server.base_url) as client:
        response = await client.post("/v1/messages", json=body)
    assert len(response.json()["content"][0]["text"].split()) == 3


def test_servers_keep_separate_state(make_sim: Callable[..., SimServer]) -> None:
    first, second = make_sim(), make_sim(reply_tokens=2)
    first.state.inject(Fault(kind="server_error"))
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "Hi"}]}
    with httpx2.Client() as client:
        assert client.post(second.base_url + "/v1/chat/completions", json=body).status_code == 200
        assert client.post(first.base_url + "/v1/chat/completions", json=body).status_code == 500
    assert second.state.stats.faults_fired == {}
    assert first.state is not second.state


def test_stop_with_a_stream_still_open(make_sim: Callable[..., SimServer]) -> None:
    server = make_sim(latency=LatencyProfile(tokens_per_s=2))
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    with (
        httpx2.Client(base_url=server.base_url) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert next(response.iter_lines()).startswith("data: ")
    server.stop()  # the client went away mid-stream, so the server is free to stop


async def test_app_runs_in_process_over_asgi() -> None:
    app = create_app(SimConfig(reply_tokens=4))
    assert isinstance(app.state.sim, SimState)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://sim") as client:
        body = {"contents": [{"parts": [{"text": "Hi"}]}]}
        response = await client.post("/v1beta/models/gemini-2.5-flash:generateContent", json=body)
        stats = (await client.get("/_sim/stats")).json()
    assert response.json()["usageMetadata"]["candidatesTokenCount"] == 4
    assert stats["requests"] == {"gemini": 1}


def test_cache_minimums_come_from_catalogue_config_and_default() -> None:
    state = SimState(SimConfig(cache_min_tokens={"gpt-5": 2048}, default_cache_min_tokens=512))
    assert state.cache_min_tokens("claude-opus-4-6") == 4096
    assert state.cache_min_tokens("gpt-5") == 2048
    assert state.cache_min_tokens("no-such-model") == 512
    assert state.cache_min_tokens("smollm2-135m-instruct") == 512  # catalogued, no caching
