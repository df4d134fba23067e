"""The Gemini API, through google-genai."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import types

from helios.sim import SimServer

MODEL = "gemini-2.5-flash"  # cache minimum 1024; gemini-2.5-pro's is 4096
PROMPT = "Describe the sea."


def test_plain_reply_shape(gemini_client: genai.Client) -> None:
    response = gemini_client.models.generate_content(model=MODEL, contents=PROMPT)
    assert response.text is not None
    assert len(response.text.split()) == 24
    [candidate] = response.candidates or []
    assert candidate.finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (5, 24)
    assert usage.total_token_count == 29
    assert usage.cached_content_token_count is None  # omitted when zero, like the real API
    assert response.model_version == MODEL


def test_stream_joins_to_the_plain_text(gemini_client: genai.Client) -> None:
    plain = gemini_client.models.generate_content(model=MODEL, contents=PROMPT)
    chunks = list(gemini_client.models.generate_content_stream(model=MODEL, contents=PROMPT))
    assert "".join(chunk.text or "" for chunk in chunks) == plain.text
    final = chunks[-1]
    assert final.candidates is not None
    assert final.candidates[0].finish_reason == types.FinishReason.STOP
    assert final.usage_metadata is not None
    assert final.usage_metadata.candidates_token_count == 24
    # Intermediate chunks carry cumulative counts, as the real API's do.
    counts = [
        chunk.usage_metadata.candidates_token_count for chunk in chunks if chunk.usage_metadata
    ]
    assert counts == sorted(counts)


async def test_async_client_streams_the_same_text(async_gemini_client: Any) -> None:
    plain = await async_gemini_client.models.generate_content(model=MODEL, contents=PROMPT)
    stream = await async_gemini_client.models.generate_content_stream(model=MODEL, contents=PROMPT)
    text = "".join([chunk.text or "" async for chunk in stream])
    assert text == plain.text


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_both_api_versions_are_served(sim: SimServer, version: str) -> None:
    options = types.HttpOptions(base_url=sim.base_url, api_version=version)
    with genai.Client(api_key="sim", http_options=options) as client:
        assert client.models.generate_content(model=MODEL, contents=PROMPT).text
    assert sim.state.requests[-1].path == f"/{version}/models/{MODEL}:generateContent"


def test_config_max_tokens_stop_and_system(gemini_client: genai.Client) -> None:
    full = gemini_client.models.generate_content(model=MODEL, contents=PROMPT).text or ""
    short = gemini_client.models.generate_content(
        model=MODEL, contents=PROMPT, config=types.GenerateContentConfig(max_output_tokens=3)
    )
    assert short.text == " ".join(full.split(" ")[:3])
    assert short.candidates is not None
    assert short.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS

    stop = " " + full.split(" ")[4]
    cut = gemini_client.models.generate_content(
        model=MODEL, contents=PROMPT, config=types.GenerateContentConfig(stop_sequences=[stop])
    )
    assert cut.text == full[: full.index(stop)]

    with_system = gemini_client.models.generate_content(
        model=MODEL,
        contents=PROMPT,
        config=types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.3, seed=1),
    )
    assert with_system.usage_metadata is not None
    assert with_system.usage_metadata.prompt_token_count == 8


def test_text_is_the_same_as_openai_for_the_same_prompt(
    gemini_client: genai.Client, http: httpx2.Client
) -> None:
    response = gemini_client.models.generate_content(
        model=MODEL,
        contents=[types.Content(role="user", parts=[types.Part(text=PROMPT)])],
        config=types.GenerateContentConfig(system_instruction="Be brief."),
    )
    body = {
        "model": "gpt-5",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": PROMPT},
        ],
    }
    completion = http.post("/v1/chat/completions", json=body).json()
    assert completion["choices"][0]["message"]["content"] == response.text


def usage_of(client: genai.Client, contents: str, model: str = MODEL) -> tuple[int, int]:
    usage = client.models.generate_content(model=model, contents=contents).usage_metadata
    assert usage is not None and usage.prompt_token_count is not None
    return usage.prompt_token_count, usage.cached_content_token_count or 0


def test_implicit_cache(gemini_client: genai.Client) -> None:
    contents = "g" * (4 * 1300)
    assert usage_of(gemini_client, contents) == (1300, 0)
    assert usage_of(gemini_client, contents) == (1300, 1280)


def test_implicit_cache_respects_the_model_minimum(gemini_client: genai.Client) -> None:
    contents = "g" * (4 * 1300)
    for _ in range(2):
        assert usage_of(gemini_client, contents, "gemini-2.5-pro") == (1300, 0)


def test_implicit_cache_expires(sim: SimServer, gemini_client: genai.Client) -> None:
    now = [0.0]
    sim.state.clock = lambda: now[0]
    contents = "g" * (4 * 1100)
    usage_of(gemini_client, contents)
    now[0] += 400
    assert usage_of(gemini_client, contents) == (1100, 0)


def test_streamed_usage_reports_cached_tokens(gemini_client: genai.Client) -> None:
    contents = "g" * (4 * 1100)
    usage_of(gemini_client, contents)
    chunks = list(gemini_client.models.generate_content_stream(model=MODEL, contents=contents))
    usage = chunks[-1].usage_metadata
    assert usage is not None
    assert usage.cached_content_token_count == 1024


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (f"/v1beta/models/{MODEL}:generateContent", {"contents": []}, 400),
        (f"/v1beta/models/{MODEL}:generateContent", {"nothing": 1}, 400),
        (
            f"/v1beta/models/{MODEL}:generateContent",
            {"contents": [{"parts": [{"text": "x"}]}], "cachedContent": "cachedContents/1"},
            400,
        ),
        (f"/v1beta/models/{MODEL}:countTokens", {"contents": []}, 404),
        (f"/v2/models/{MODEL}:generateContent", {"contents": []}, 404),
    ],
)
def test_malformed_requests(
    http: httpx2.Client, path: str, body: dict[str, Any], status: int
) -> None:
    response = http.post(path, json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == status
