"""OpenAI Chat Completions, through the official SDK."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from helios.sim import SimServer

MODEL = "gpt-5"
MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Describe the sea."},
]


def long_messages(tokens: int, tail: str = "Describe the sea.") -> list[Any]:
    return [
        {"role": "system", "content": "s" * (4 * tokens)},
        {"role": "user", "content": tail},
    ]


def test_plain_reply_shape(openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    [choice] = completion.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert len((choice.message.content or "").split()) == 24
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == 8  # "Be brief." 3 + "Describe the sea." 5
    assert usage.completion_tokens == 24
    assert usage.total_tokens == 32
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0


def test_stream_joins_to_the_plain_text_and_ends_with_usage(openai_client: openai.OpenAI) -> None:
    plain = openai_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    chunks = list(
        openai_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 24
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_stream_without_include_usage_has_no_usage(openai_client: openai.OpenAI) -> None:
    chunks = list(
        openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    )
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)
    assert len(chunks) == 1 + 24 + 1  # role, one per word, finish


async def test_async_client_streams_the_same_text(async_openai_client: openai.AsyncOpenAI) -> None:
    plain = await async_openai_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    stream = await async_openai_client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == plain.choices[0].message.content


def test_max_completion_tokens_max_tokens_and_stop(openai_client: openai.OpenAI) -> None:
    full = openai_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    text = full.choices[0].message.content or ""
    words = text.split(" ")
    for limit in ({"max_completion_tokens": 3}, {"max_tokens": 3}):
        short = openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, **limit)
        assert short.choices[0].finish_reason == "length"
        assert short.choices[0].message.content == " ".join(words[:3])
    stop = " " + words[4]
    cut = openai_client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stop=[stop], seed=7, prompt_cache_key="k"
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop)]


def test_text_is_the_same_as_anthropic_for_the_same_prompt(
    openai_client: openai.OpenAI, http: httpx2.Client
) -> None:
    completion = openai_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    anthropic_body = {
        "model": "claude-opus-4-8",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [MESSAGES[1]],
    }
    message = http.post("/v1/messages", json=anthropic_body).json()
    assert message["content"][0]["text"] == completion.choices[0].message.content
    assert completion.usage is not None
    assert message["usage"]["input_tokens"] == completion.usage.prompt_tokens


def cached(client: openai.OpenAI, messages: list[Any], model: str = MODEL) -> tuple[int, int]:
    usage = client.chat.completions.create(model=model, messages=messages).usage
    assert usage is not None and usage.prompt_tokens_details is not None
    return usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens or 0


def test_automatic_prefix_cache_in_128_token_steps(openai_client: openai.OpenAI) -> None:
    messages = long_messages(1500)  # 1500 + 5 prompt tokens
    assert cached(openai_client, messages) == (1505, 0)
    assert cached(openai_client, messages) == (1505, 1024 + 3 * 128)
    # A different question after the same long system prompt shares its prefix.
    assert cached(openai_client, long_messages(1500, "Something else entirely.")) == (1506, 1408)


def test_short_prompts_are_never_cached(openai_client: openai.OpenAI) -> None:
    messages = long_messages(1000)
    assert cached(openai_client, messages) == (1005, 0)
    assert cached(openai_client, messages) == (1005, 0)


def test_cached_prefix_expires(sim: SimServer, openai_client: openai.OpenAI) -> None:
    now = [0.0]
    sim.state.clock = lambda: now[0]
    messages = long_messages(1100)
    cached(openai_client, messages)
    now[0] += 299
    assert cached(openai_client, messages)[1] == 1024
    now[0] += 301
    assert cached(openai_client, messages)[1] == 0


def test_streamed_usage_reports_cached_tokens(openai_client: openai.OpenAI) -> None:
    messages = long_messages(1100)
    cached(openai_client, messages)
    chunks = list(
        openai_client.chat.completions.create(
            model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 1024


def test_content_parts_and_tool_messages_are_accepted(openai_client: openai.OpenAI) -> None:
    messages: list[Any] = [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": "Hi"},
    ]
    usage = openai_client.chat.completions.create(model=MODEL, messages=messages).usage
    assert usage is not None and usage.prompt_tokens == 4


@pytest.mark.parametrize(
    "body",
    [
        {"messages": MESSAGES},
        {"model": MODEL, "messages": []},
        {"model": MODEL, "messages": MESSAGES, "n": 2},
        {"model": MODEL, "messages": MESSAGES, "max_tokens": 0},
        {"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]},
    ],
)
def test_malformed_requests_get_invalid_request_errors(
    http: httpx2.Client, body: dict[str, Any]
) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
