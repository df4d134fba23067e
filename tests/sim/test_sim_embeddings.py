"""OpenAI Embeddings (``POST /v1/embeddings``): wire format, vectors, bad input, faults."""

from __future__ import annotations

import base64
import struct
from typing import Any

import httpx2
import numpy as np
import openai
import pytest

from helios.sim import Fault, SimServer, count_tokens
from helios.sim.embeddings import embed

MODEL = "text-embedding-3-small"
PATH = "/v1/embeddings"
TEXTS = ["the cat sat on the mat", "The cat sat on the hat.", "stock prices fell sharply"]


def f32(values: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.asarray(values, dtype=np.float32)


def vectors(response: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.asarray([item.embedding for item in response.data], dtype=np.float32)


def test_reply_shape_and_usage(openai_client: openai.OpenAI) -> None:
    response = openai_client.embeddings.create(
        model=MODEL, input=TEXTS, dimensions=256, encoding_format="float"
    )
    assert response.object == "list"
    assert response.model == MODEL
    assert [item.object for item in response.data] == ["embedding"] * 3
    assert [item.index for item in response.data] == [0, 1, 2]
    assert all(len(item.embedding) == 256 for item in response.data)
    tokens = sum(count_tokens(text) for text in TEXTS)
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (tokens, tokens)
    np.testing.assert_allclose(np.linalg.norm(vectors(response), axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize(
    ("model", "width"),
    [
        ("text-embedding-3-small", 1536),
        ("text-embedding-3-large", 3072),
        ("text-embedding-ada-002", 1536),
        ("made-up-embedder", 1536),
    ],
)
def test_default_width_follows_the_model(http: httpx2.Client, model: str, width: int) -> None:
    body = http.post(PATH, json={"model": model, "input": "hello"}).json()
    assert len(body["data"][0]["embedding"]) == width


def test_base64_decodes_to_the_same_float32_values(http: httpx2.Client) -> None:
    request = {"model": MODEL, "input": TEXTS, "dimensions": 64}
    floats = http.post(PATH, json=request).json()["data"]
    encoded = http.post(PATH, json={**request, "encoding_format": "base64"}).json()["data"]
    for as_floats, as_base64 in zip(floats, encoded, strict=True):
        assert isinstance(as_base64["embedding"], str)
        raw = base64.b64decode(as_base64["embedding"])
        assert len(raw) == 64 * 4
        decoded = struct.unpack("<64f", raw)
        assert np.array_equal(f32(decoded), f32(as_floats["embedding"]))


def test_the_sdk_default_asks_for_base64_and_gets_the_same_vectors(
    sim: SimServer, openai_client: openai.OpenAI
) -> None:
    explicit = openai_client.embeddings.create(
        model=MODEL, input=TEXTS, dimensions=32, encoding_format="float"
    )
    default = openai_client.embeddings.create(model=MODEL, input=TEXTS, dimensions=32)
    assert sim.state.requests[-1].body["encoding_format"] == "base64"
    assert np.array_equal(vectors(explicit), vectors(default))


def test_one_string_is_a_list_of_one(http: httpx2.Client) -> None:
    one = http.post(PATH, json={"model": MODEL, "input": "hello", "dimensions": 16}).json()
    listed = http.post(PATH, json={"model": MODEL, "input": ["hello"], "dimensions": 16}).json()
    assert one["data"] == listed["data"]


def test_vectors_are_deterministic_and_word_based() -> None:
    mat, hat, stocks = (f32(embed(text, MODEL, 1536)) for text in TEXTS)
    assert np.array_equal(mat, f32(embed("The CAT sat on the mat!", MODEL, 1536)))
    assert float(mat @ hat) > 0.7  # five of six words and four of five pairs shared
    assert abs(float(mat @ stocks)) < 0.2  # nothing shared: only hash collisions
    # Another model's vector for the same text is unrelated.
    assert abs(float(mat @ f32(embed(TEXTS[0], "text-embedding-3-large", 1536)))) < 0.2


def test_text_without_words_still_gets_a_unit_vector() -> None:
    vector = f32(embed("?!", MODEL, 8))
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-6)


def test_requests_are_counted_and_recorded_as_openai(sim: SimServer, http: httpx2.Client) -> None:
    http.post(PATH, json={"model": MODEL, "input": ["a", "b"]}, headers={"x-team": "helios"})
    [record] = sim.state.requests
    assert (record.protocol, record.path) == ("openai", PATH)
    assert record.body["input"] == ["a", "b"]
    assert record.headers["x-team"] == "helios"
    assert sim.state.stats.requests == {"openai": 1}


@pytest.mark.parametrize(
    "body",
    [
        {"input": "hello"},
        {"model": MODEL},
        {"model": MODEL, "input": []},
        {"model": MODEL, "input": ""},
        {"model": MODEL, "input": ["fine", ""]},
        {"model": MODEL, "input": ["fine", 3]},
        {"model": MODEL, "input": [[1, 2, 3]]},
        {"model": MODEL, "input": {"text": "hello"}},
        {"model": MODEL, "input": ["x"] * 2049},
        {"model": MODEL, "input": "x" * (4 * 8192 + 1)},
        {"model": MODEL, "input": ["x" * 32_000] * 40},  # 8,000 tokens each, 320,000 in all
        {"model": MODEL, "input": "hello", "dimensions": 0},
        {"model": MODEL, "input": "hello", "dimensions": 1537},
        {"model": MODEL, "input": "hello", "dimensions": True},
        {"model": "text-embedding-ada-002", "input": "hello", "dimensions": 512},
        {"model": MODEL, "input": "hello", "encoding_format": "hex"},
    ],
)
def test_bad_input_gets_a_400_in_openai_shape(
    sim: SimServer, http: httpx2.Client, body: dict[str, Any]
) -> None:
    response = http.post(PATH, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] and set(error) >= {"param", "code"}
    assert sim.state.stats.total_requests == 0  # refused before it counts


def test_a_body_that_is_not_an_object_gets_a_400(http: httpx2.Client) -> None:
    response = http.post(PATH, content=b"[1, 2]", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]["message"]


def test_the_sdk_raises_bad_request_for_an_empty_text(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match=r"input\.1: must not be empty"):
        openai_client.embeddings.create(model=MODEL, input=["fine", ""])


def test_queued_openai_faults_apply_to_embeddings(sim: SimServer, http: httpx2.Client) -> None:
    sim.state.inject(Fault(kind="rate_limit", retry_after_s=2), protocol="openai")
    http.post(PATH, json={"model": MODEL})  # a bad request does not consume the fault
    limited = http.post(PATH, json={"model": MODEL, "input": "hello"})
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert http.post(PATH, json={"model": MODEL, "input": "hello"}).status_code == 200
    assert sim.state.stats.faults_fired == {"rate_limit": 1}


def test_a_fault_for_another_protocol_leaves_embeddings_alone(
    sim: SimServer, http: httpx2.Client
) -> None:
    sim.state.inject(Fault(kind="server_error"), protocol="anthropic")
    assert http.post(PATH, json={"model": MODEL, "input": "hello"}).status_code == 200
    assert sim.state.pending_faults == 1


def test_sdk_errors_for_header_faults(openai_client: openai.OpenAI) -> None:
    def ask(fault: str) -> object:
        return openai_client.embeddings.create(
            model=MODEL, input="hello", extra_headers={"x-sim-fault": fault}
        )

    with pytest.raises(openai.InternalServerError) as overloaded:
        ask("overloaded")
    assert overloaded.value.status_code == 503
    with pytest.raises(openai.AuthenticationError):
        ask("auth")
    with pytest.raises(openai.APIConnectionError):
        ask("drop")


def test_a_timeout_fault_outlasts_the_client(sim: SimServer) -> None:
    with openai.OpenAI(
        base_url=sim.base_url + "/v1", api_key="sim", max_retries=0, timeout=0.2
    ) as client:
        sim.state.inject(Fault(kind="timeout", seconds=5))
        with pytest.raises(openai.APITimeoutError):
            client.embeddings.create(model=MODEL, input="hello")
