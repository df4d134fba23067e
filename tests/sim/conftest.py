"""Official SDK clients and raw HTTP helpers pointed at the shared simulator.

Models are chosen for their catalogue cache minimums and because the SDKs do not warn
about them (anthropic warns, as a DeprecationWarning, for e.g. claude-sonnet-5-5):
claude-opus-4-8 and gpt-5 and gemini-2.5-flash cache from 1024 tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types

from helios.sim import SimServer

ANTHROPIC_MODEL = "claude-opus-4-8"
OPENAI_MODEL = "gpt-5"
GEMINI_MODEL = "gemini-2.5-flash"
TIMEOUT_S = 10.0


@pytest.fixture
def anthropic_client(sim: SimServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=sim.base_url, api_key="sim", max_retries=0, timeout=TIMEOUT_S
    ) as client:
        yield client


@pytest.fixture
def openai_client(sim: SimServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=sim.base_url + "/v1", api_key="sim", max_retries=0, timeout=TIMEOUT_S
    ) as client:
        yield client


@pytest.fixture
def gemini_client(sim: SimServer) -> Iterator[genai.Client]:
    options = types.HttpOptions(base_url=sim.base_url, timeout=int(TIMEOUT_S * 1000))
    with genai.Client(api_key="sim", http_options=options) as client:
        yield client


@pytest.fixture
async def async_anthropic_client(sim: SimServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=sim.base_url, api_key="sim", max_retries=0, timeout=TIMEOUT_S
    ) as client:
        yield client


@pytest.fixture
async def async_openai_client(sim: SimServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=sim.base_url + "/v1", api_key="sim", max_retries=0, timeout=TIMEOUT_S
    ) as client:
        yield client


@pytest.fixture
async def async_gemini_client(sim: SimServer) -> AsyncIterator[Any]:
    options = types.HttpOptions(base_url=sim.base_url, timeout=int(TIMEOUT_S * 1000))
    async with genai.Client(api_key="sim", http_options=options).aio as client:
        yield client


class Wire:
    """Minimal valid requests for each protocol, sent with plain httpx2."""

    def __init__(self, client: httpx2.Client) -> None:
        self.client = client

    @staticmethod
    def path(protocol: str, *, stream: bool = False) -> str:
        if protocol == "anthropic":
            return "/v1/messages"
        if protocol == "openai":
            return "/v1/chat/completions"
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"/v1beta/models/{GEMINI_MODEL}:{method}"

    @staticmethod
    def body(protocol: str, text: str = "Hello", *, stream: bool = False) -> dict[str, Any]:
        if protocol == "anthropic":
            return {
                "model": ANTHROPIC_MODEL,
                "max_tokens": 256,
                "messages": [{"role": "user", "content": text}],
                "stream": stream,
            }
        if protocol == "openai":
            return {
                "model": OPENAI_MODEL,
                "messages": [{"role": "user", "content": text}],
                "stream": stream,
            }
        return {"contents": [{"role": "user", "parts": [{"text": text}]}]}

    def post(
        self,
        protocol: str,
        text: str = "Hello",
        *,
        stream: bool = False,
        headers: dict[str, str] | None = None,
    ) -> httpx2.Response:
        return self.client.post(
            self.path(protocol, stream=stream),
            json=self.body(protocol, text, stream=stream),
            headers=headers,
        )


@pytest.fixture
def http(sim: SimServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=sim.base_url, timeout=TIMEOUT_S) as client:
        yield client


@pytest.fixture
def wire(http: httpx2.Client) -> Wire:
    return Wire(http)
