"""The Anthropic-compatible gateway, driven by the official ``anthropic`` SDK (sync and async)
against a real ``helios serve`` with the provider simulator behind it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from helios.sim import SimServer
from tests.providers.remote import LONG_TEXT
from tests.server.gateway_fixtures import Served, gateway_settings, serve

QUESTION = [{"role": "user", "content": "Explain HNSW in two sentences."}]


@pytest.fixture
def gateway(sim: SimServer, tmp_path: Path) -> Iterator[Served]:
    with serve(gateway_settings(sim.base_url, tmp_path)) as served:
        yield served


def client(served: Served) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=served.url, api_key="unused", max_retries=0)


def test_a_message_and_its_repeat_from_the_cache(gateway: Served) -> None:
    with client(gateway) as sdk:
        first = sdk.messages.with_raw_response.create(
            model="sonnet", max_tokens=60, messages=QUESTION, system="Be brief."
        )
        again = sdk.messages.with_raw_response.create(
            model="sonnet", max_tokens=60, messages=QUESTION, system="Be brief."
        )
    message, repeat = first.parse(), again.parse()
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.output_tokens > 0
    assert first.headers["cache-status"] == "helios; fwd=miss"
    assert again.headers["cache-status"] == 'helios; hit; detail="L2"'
    assert repeat.content == message.content


async def test_a_streamed_message_then_the_same_stream_replayed(gateway: Served) -> None:
    async def stream() -> tuple[str, int, str]:
        sdk = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="unused", max_retries=0)
        async with sdk:
            async with sdk.messages.stream(
                model="sonnet", max_tokens=60, messages=QUESTION
            ) as stream:
                text = "".join([piece async for piece in stream.text_stream])
                final = await stream.get_final_message()
            return text, final.usage.output_tokens, final.stop_reason or ""

    text, tokens, stop = await stream()
    assert text and tokens > 0 and stop in ("end_turn", "max_tokens")
    assert await stream() == (text, tokens, stop)


def test_cache_control_blocks_place_the_prompt_cache_breakpoint(gateway: Served) -> None:
    system = [{"type": "text", "text": LONG_TEXT, "cache_control": {"type": "ephemeral"}}]
    no_cache = {"Cache-Control": "no-cache"}  # the response cache must not answer: L1 only
    with client(gateway) as sdk:
        first = sdk.messages.create(
            model="sonnet", max_tokens=20, system=system, messages=QUESTION, extra_headers=no_cache
        )
        second = sdk.messages.create(
            model="sonnet",
            max_tokens=20,
            system=system,
            messages=[{"role": "user", "content": "And in one?"}],
            extra_headers=no_cache,
        )
    assert (first.usage.cache_creation_input_tokens or 0) > 0
    assert (second.usage.cache_read_input_tokens or 0) > 0


def test_count_tokens_estimates_the_input(gateway: Served) -> None:
    with client(gateway) as sdk:
        short = sdk.messages.count_tokens(model="sonnet", messages=QUESTION)
        longer = sdk.messages.count_tokens(
            model="sonnet",
            messages=QUESTION,
            system=LONG_TEXT,
            tools=[{"name": "search", "description": "Search", "input_schema": {"type": "object"}}],
        )
    assert 0 < short.input_tokens < longer.input_tokens


def test_errors_come_in_anthropics_shape(gateway: Served) -> None:
    with client(gateway) as sdk:
        with pytest.raises(anthropic.NotFoundError) as missing:
            sdk.messages.create(model="nope", max_tokens=10, messages=QUESTION)
        assert missing.value.body["type"] == "error"  # type: ignore[index]
        assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
        with pytest.raises(anthropic.BadRequestError, match="top_k"):
            sdk.messages.create(
                model="sonnet", max_tokens=10, messages=QUESTION, extra_body={"top_k": 5}
            )
        with pytest.raises(anthropic.BadRequestError, match="image"):
            sdk.messages.create(
                model="sonnet",
                max_tokens=10,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "AA==",
                                },
                            }
                        ],
                    }
                ],
            )
        with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
            sdk.messages.create(model="sonnet", max_tokens=0, messages=QUESTION)
