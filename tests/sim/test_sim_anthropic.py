"""The Anthropic Messages protocol, through the official SDK."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest

from helios.sim import SimServer

MODEL = "claude-opus-4-8"  # cache minimum 1024 in the catalogue
MESSAGES: list[Any] = [{"role": "user", "content": "Describe the sea."}]


def long_system(tokens: int, ttl: str | None = "5m") -> list[dict[str, Any]]:
    block: dict[str, Any] = {"type": "text", "text": "s" * (4 * tokens)}
    if ttl is not None:
        block["cache_control"] = {"type": "ephemeral", "ttl": ttl}
    return [block]


def test_plain_reply_shape(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == MODEL
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert len(message.content[0].text.split()) == 24
    assert message.usage.input_tokens == 5  # "Describe the sea." is 17 characters
    assert message.usage.output_tokens == 24
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_creation is not None
    assert message.usage.cache_creation.ephemeral_5m_input_tokens == 0


def test_stream_joins_to_the_plain_text(anthropic_client: anthropic.Anthropic) -> None:
    plain = anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    with anthropic_client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(deltas) == 24
    assert "".join(deltas) == plain.content[0].text
    assert final.usage.output_tokens == 24
    assert final.usage.input_tokens == plain.usage.input_tokens
    assert final.stop_reason == "end_turn"


def test_raw_stream_event_order(anthropic_client: anthropic.Anthropic) -> None:
    events = list(
        anthropic_client.messages.create(model=MODEL, max_tokens=3, messages=MESSAGES, stream=True)
    )
    assert [event.type for event in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[-2].delta.stop_reason == "max_tokens"
    assert events[-2].usage.output_tokens == 3


async def test_async_client_streams_the_same_text(
    async_anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    plain = await async_anthropic_client.messages.create(
        model=MODEL, max_tokens=100, messages=MESSAGES
    )
    async with async_anthropic_client.messages.stream(
        model=MODEL, max_tokens=100, messages=MESSAGES
    ) as stream:
        text = "".join([delta async for delta in stream.text_stream])
    assert text == plain.content[0].text


def test_stop_sequences_and_max_tokens(anthropic_client: anthropic.Anthropic) -> None:
    full = anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    words = full.content[0].text.split(" ")
    stop = " " + words[5]
    cut = anthropic_client.messages.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, stop_sequences=[stop]
    )
    assert cut.stop_reason == "stop_sequence"
    assert cut.stop_sequence == stop
    assert full.content[0].text.startswith(cut.content[0].text)
    assert stop not in cut.content[0].text

    short = anthropic_client.messages.create(model=MODEL, max_tokens=4, messages=MESSAGES)
    assert short.stop_reason == "max_tokens"
    assert short.content[0].text == " ".join(words[:4])


def test_system_and_block_content_are_accepted(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(
        model=MODEL,
        max_tokens=10,
        system="Be brief.",
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Again"},
        ],
        extra_body={"temperature": 0.2},
    )
    # "Be brief." 3 + "Hi" 1 + "Hello." 2 + "Again" 2
    assert message.usage.input_tokens == 8


def test_warm_prefix_write_read_and_ttl_expiry(
    sim: SimServer, anthropic_client: anthropic.Anthropic
) -> None:
    now = [1000.0]
    sim.state.clock = lambda: now[0]
    system = long_system(1100)

    first = anthropic_client.messages.create(
        model=MODEL, max_tokens=10, system=system, messages=MESSAGES
    )
    assert first.usage.cache_creation_input_tokens == 1100
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 1100
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.input_tokens == 5

    now[0] += 200
    with anthropic_client.messages.stream(
        model=MODEL, max_tokens=10, system=system, messages=MESSAGES
    ) as stream:
        second = stream.get_final_message()
    assert second.usage.cache_read_input_tokens == 1100
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == 5

    now[0] += 301
    third = anthropic_client.messages.create(
        model=MODEL, max_tokens=10, system=system, messages=MESSAGES
    )
    assert third.usage.cache_read_input_tokens == 0
    assert third.usage.cache_creation_input_tokens == 1100


def test_one_hour_ttl_is_reported_separately(
    sim: SimServer, anthropic_client: anthropic.Anthropic
) -> None:
    now = [0.0]
    sim.state.clock = lambda: now[0]
    system = long_system(1100, ttl="1h")
    first = anthropic_client.messages.create(
        model=MODEL, max_tokens=10, system=system, messages=MESSAGES
    )
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 1100
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 0
    now[0] += 1800
    later = anthropic_client.messages.create(
        model=MODEL, max_tokens=10, system=system, messages=MESSAGES
    )
    assert later.usage.cache_read_input_tokens == 1100


def test_prefix_below_the_model_minimum_is_not_cached(
    anthropic_client: anthropic.Anthropic,
) -> None:
    for _ in range(2):  # claude-opus-4-6 caches from 4096 tokens
        usage = anthropic_client.messages.create(
            model="claude-opus-4-6", max_tokens=10, system=long_system(1100), messages=MESSAGES
        ).usage
        assert usage.cache_creation_input_tokens == 0
        assert usage.cache_read_input_tokens == 0
        assert usage.input_tokens == 1105


def test_unknown_models_use_the_default_minimum(anthropic_client: anthropic.Anthropic) -> None:
    usage = anthropic_client.messages.create(
        model="claude-sim-test", max_tokens=10, system=long_system(1024), messages=MESSAGES
    ).usage
    assert usage.cache_creation_input_tokens == 1024


def test_breakpoint_on_a_message_block(anthropic_client: anthropic.Anthropic) -> None:
    history: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "d" * 4400, "cache_control": {"type": "ephemeral"}},
            ],
        },
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Go on."},
    ]
    for expected_read in (0, 1100):
        usage = anthropic_client.messages.create(model=MODEL, max_tokens=10, messages=history).usage
        assert usage.cache_read_input_tokens == expected_read
        assert usage.input_tokens == 4  # "Noted." 2 + "Go on." 2


def test_top_level_cache_control_marks_the_last_block(
    anthropic_client: anthropic.Anthropic,
) -> None:
    messages: list[Any] = [{"role": "user", "content": "q" * 4400}]
    control: Any = {"type": "ephemeral", "ttl": "1h"}
    first = anthropic_client.messages.create(
        model=MODEL, max_tokens=10, messages=messages, cache_control=control
    )
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 1100
    second = anthropic_client.messages.create(
        model=MODEL, max_tokens=10, messages=messages, cache_control=control
    )
    assert (second.usage.cache_read_input_tokens, second.usage.input_tokens) == (1100, 0)


def test_more_than_four_breakpoints_is_a_bad_request(anthropic_client: anthropic.Anthropic) -> None:
    blocks = [
        {"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
        for i in range(5)
    ]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4"):
        anthropic_client.messages.create(
            model=MODEL, max_tokens=10, system=blocks, messages=MESSAGES
        )


@pytest.mark.parametrize(
    "body",
    [
        {"model": MODEL, "messages": MESSAGES},
        {"model": MODEL, "max_tokens": 10, "messages": []},
        {"model": MODEL, "max_tokens": 10, "messages": [{"role": "robot", "content": "x"}]},
        {"max_tokens": 10, "messages": MESSAGES},
        {
            "model": MODEL,
            "max_tokens": 10,
            "messages": MESSAGES,
            "system": [
                {"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "2h"}}
            ],
        },
    ],
)
def test_malformed_requests_get_invalid_request_errors(
    http: httpx2.Client, body: dict[str, Any]
) -> None:
    response = http.post("/v1/messages", json=body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"


def test_requests_are_recorded_without_credentials(
    sim: SimServer, anthropic_client: anthropic.Anthropic
) -> None:
    anthropic_client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    [record] = sim.state.requests
    assert record.protocol == "anthropic"
    assert record.body["messages"] == MESSAGES
    assert "x-api-key" not in record.headers
    assert "anthropic-version" in record.headers
