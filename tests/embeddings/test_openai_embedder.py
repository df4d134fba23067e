"""The OpenAI embedder through the official SDK, against the simulator's /v1/embeddings.

The simulator's vectors are hashed words, not a semantic model (helios.sim.embeddings), so
these tests check plumbing (shapes, order, batching, errors), not meaning. A few replies the
simulator never sends (shuffled, float lists, the wrong width) come from a mock transport.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import numpy as np
import openai
import pytest
from pydantic import SecretStr

from helios.config.cache import CacheSettings, SemanticCacheSettings
from helios.config.providers import ProviderSettings
from helios.config.settings import Settings
from helios.embeddings import Embedder
from helios.embeddings.openai import (
    MAX_INPUTS_PER_REQUEST,
    OpenAIEmbedder,
    request_batches,
)
from helios.errors import (
    AuthenticationError,
    BadRequest,
    ConfigError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from helios.sim import Fault, SimServer
from helios.sim.embeddings import embed

MODEL = "text-embedding-3-small"
DIMENSIONS = 64
TEXTS = ["How do I reset my password?", "how do I reset my password", "Paris weather today"]


def embedding_settings(
    base_url: str,
    *,
    provider: str = "openai",
    dimensions: int = DIMENSIONS,
    api_key: str | None = "test-key",
    timeout_s: float = 5.0,
    headers: dict[str, str] | None = None,
) -> Settings:
    endpoint = ProviderSettings.model_validate(
        {
            "kind": "anthropic" if provider == "anthropic" else "openai",
            "base_url": base_url,
            "api_key": SecretStr(api_key) if api_key is not None else None,
            "timeout_s": timeout_s,
            "headers": headers or {},
        }
    )
    semantic = SemanticCacheSettings(
        embedder="openai",
        openai_embedding_model=MODEL,
        openai_embedding_dimensions=dimensions,
        openai_provider=provider,
    )
    return Settings(providers={provider: endpoint}, cache=CacheSettings(semantic=semantic))


@pytest.fixture
async def make_embedder(sim: SimServer) -> AsyncIterator[Callable[..., OpenAIEmbedder]]:
    """``make_embedder(**embedding_settings fields)``: an embedder on the simulator."""
    made: list[OpenAIEmbedder] = []

    def make(**fields: Any) -> OpenAIEmbedder:
        embedder = OpenAIEmbedder.from_settings(embedding_settings(sim.base_url + "/v1", **fields))
        made.append(embedder)
        return embedder

    yield make
    for embedder in made:
        await embedder.aclose()


def sent(sim: SimServer) -> list[dict[str, Any]]:
    return [dict(record.body) for record in sim.state.requests]


async def test_unit_float32_rows_in_input_order(
    make_embedder: Callable[..., OpenAIEmbedder], sim: SimServer
) -> None:
    embedder = make_embedder()
    vectors = await embedder.embed(TEXTS)

    assert isinstance(embedder, Embedder)
    assert (embedder.name, embedder.dim) == (f"openai:{MODEL}:{DIMENSIONS}", DIMENSIONS)
    assert vectors.shape == (3, DIMENSIONS) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    for row, text in zip(vectors, TEXTS, strict=True):
        np.testing.assert_allclose(row, embed(text, MODEL, DIMENSIONS), atol=1e-6)
    # The simulator's words-and-pairs hashing: the same words are close, other words are not.
    assert float(vectors[0] @ vectors[1]) > 0.99 and float(vectors[0] @ vectors[2]) < 0.5


async def test_one_request_with_model_dimensions_and_base64(
    make_embedder: Callable[..., OpenAIEmbedder], sim: SimServer
) -> None:
    await make_embedder(dimensions=256).embed(TEXTS)
    assert sent(sim) == [
        {"model": MODEL, "input": TEXTS, "dimensions": 256, "encoding_format": "base64"}
    ]


async def test_the_name_changes_with_the_dimensions(
    make_embedder: Callable[..., OpenAIEmbedder],
) -> None:
    small, large = make_embedder(dimensions=256), make_embedder(dimensions=1536)
    assert small.name != large.name
    assert (await large.embed(["hello"])).shape == (1, 1536)


async def test_no_texts_no_request(
    make_embedder: Callable[..., OpenAIEmbedder], sim: SimServer
) -> None:
    vectors = await make_embedder().embed([])
    assert vectors.shape == (0, DIMENSIONS) and vectors.dtype == np.float32
    assert sim.state.stats.total_requests == 0


async def test_more_than_2048_texts_are_split_into_requests(
    make_embedder: Callable[..., OpenAIEmbedder], sim: SimServer
) -> None:
    texts = [f"text number {i}" for i in range(MAX_INPUTS_PER_REQUEST + 1)]
    vectors = await make_embedder(dimensions=8).embed(texts)
    assert [len(body["input"]) for body in sent(sim)] == [2048, 1]
    assert vectors.shape == (2049, 8)
    np.testing.assert_allclose(vectors[-1], embed(texts[-1], MODEL, 8), atol=1e-6)
    np.testing.assert_allclose(vectors[2047], embed(texts[2047], MODEL, 8), atol=1e-6)


async def test_long_texts_are_split_to_stay_under_the_token_cap(
    make_embedder: Callable[..., OpenAIEmbedder], sim: SimServer
) -> None:
    texts = [f"{i} " + "w" * 7998 for i in range(40)]  # 8,000 bytes each: 37 fit in 300,000
    vectors = await make_embedder(dimensions=8).embed(texts)
    assert [len(body["input"]) for body in sent(sim)] == [37, 3]
    assert vectors.shape == (40, 8)


def test_request_batches() -> None:
    assert request_batches([]) == []
    assert request_batches(["a"] * 5, max_inputs=2) == [(0, 2), (2, 4), (4, 5)]
    # Bytes, not characters: "é" is two.
    assert request_batches(["éé", "a", "aaa"], max_bytes=5) == [(0, 2), (2, 3)]
    assert request_batches(["a", "x" * 10, "b"], max_bytes=5) == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        (Fault(kind="rate_limit", retry_after_s=3), RateLimited, 429),
        (Fault(kind="server_error"), ProviderUnavailable, 500),
        (Fault(kind="overloaded"), ProviderUnavailable, 503),
        (Fault(kind="auth"), AuthenticationError, 401),
        (Fault(kind="bad_request"), BadRequest, 400),
        (Fault(kind="drop"), ProviderUnavailable, None),
    ],
)
async def test_faults_become_helios_errors(
    make_embedder: Callable[..., OpenAIEmbedder],
    sim: SimServer,
    fault: Fault,
    error: type[Exception],
    status: int | None,
) -> None:
    sim.state.inject(fault)
    with pytest.raises(error) as info:
        await make_embedder().embed(TEXTS)
    assert info.value.status_code == status  # type: ignore[attr-defined]
    assert (info.value.provider, info.value.model) == ("openai", MODEL)  # type: ignore[attr-defined]
    if isinstance(info.value, RateLimited):
        assert info.value.retry_after == pytest.approx(3)
    assert sim.state.stats.requests == {"openai": 1}  # no retries


async def test_a_slow_answer_raises_provider_timeout(
    make_embedder: Callable[..., OpenAIEmbedder], sim: SimServer
) -> None:
    sim.state.inject(Fault(kind="timeout", seconds=5))
    with pytest.raises(ProviderTimeout):
        await make_embedder(timeout_s=0.2).embed(TEXTS)


async def test_an_empty_text_is_refused_by_the_api(
    make_embedder: Callable[..., OpenAIEmbedder],
) -> None:
    with pytest.raises(BadRequest, match=r"input\.1: must not be empty"):
        await make_embedder().embed(["fine", ""])


async def test_a_missing_key_names_the_setting(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationError) as info:
        OpenAIEmbedder.from_settings(embedding_settings(sim.base_url + "/v1", api_key=None))
    message = str(info.value)
    assert "providers.openai.api_key" in message and "OPENAI_API_KEY" in message
    assert "cache.semantic.embedder" in message


async def test_the_key_can_come_from_the_environment(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    embedder = OpenAIEmbedder.from_settings(embedding_settings(sim.base_url + "/v1", api_key=None))
    try:
        assert (await embedder.embed(["hello"])).shape == (1, DIMENSIONS)
    finally:
        await embedder.aclose()


async def test_a_compatible_endpoint_needs_no_key_and_gets_its_headers(
    make_embedder: Callable[..., OpenAIEmbedder], sim: SimServer
) -> None:
    embedder = make_embedder(provider="local-vllm", api_key=None, headers={"x-team": "helios"})
    assert (await embedder.embed(["hello"])).shape == (1, DIMENSIONS)
    assert sim.state.requests[-1].headers["x-team"] == "helios"


def test_the_provider_must_speak_openai(sim: SimServer) -> None:
    settings = embedding_settings(sim.base_url, provider="anthropic")
    with pytest.raises(
        ConfigError, match=r"openai_provider: providers\.anthropic is of kind anthropic"
    ):
        OpenAIEmbedder.from_settings(settings)


async def test_aclose_closes_the_client(make_embedder: Callable[..., OpenAIEmbedder]) -> None:
    client = openai.AsyncOpenAI(api_key="x", base_url="http://127.0.0.1:9/v1")
    embedder = OpenAIEmbedder(client, MODEL, DIMENSIONS)
    await embedder.aclose()
    assert client.is_closed()


# --- replies the simulator does not send, from a mock transport ------------------------------


def mocked(items: list[dict[str, Any]], dimensions: int = 3) -> OpenAIEmbedder:
    """An embedder whose every request gets ``items`` as its ``data``."""

    def reply(request: httpx2.Request) -> httpx2.Response:
        body = {"object": "list", "data": items, "model": MODEL, "usage": {}}
        body["usage"] = {"prompt_tokens": 1, "total_tokens": 1}
        return httpx2.Response(200, content=json.dumps(body).encode())

    client = openai.AsyncOpenAI(
        api_key="x",
        base_url="http://mock/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(reply)),
    )
    return OpenAIEmbedder(client, MODEL, dimensions, provider_name="mock")


def item(index: int, embedding: list[float] | str) -> dict[str, Any]:
    return {"object": "embedding", "index": index, "embedding": embedding}


def b64(values: list[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


async def test_rows_follow_index_not_reply_order_and_are_normalised() -> None:
    embedder = mocked([item(1, b64([0, 3, 4])), item(0, [2.0, 0.0, 0.0])])  # floats too
    vectors = await embedder.embed(["first", "second"])
    np.testing.assert_allclose(vectors, [[1, 0, 0], [0, 0.6, 0.8]], atol=1e-7)
    assert vectors.dtype == np.float32


async def test_a_zero_vector_stays_zero_instead_of_nan() -> None:
    vectors = await mocked([item(0, [0.0, 0.0, 0.0])]).embed(["x"])
    assert not np.isnan(vectors).any() and not vectors.any()


@pytest.mark.parametrize(
    "items",
    [
        [item(0, [1.0, 0.0, 0.0])],  # one row for two texts
        [item(0, [1.0, 0.0, 0.0]), item(0, [0.0, 1.0, 0.0])],  # an index twice
        [item(0, "not base64!"), item(1, [1.0, 0.0, 0.0])],
        [item(0, [[1.0], [0.0], [0.0]]), item(1, [1.0, 0.0, 0.0])],
    ],
)
async def test_a_broken_reply_is_provider_unavailable(items: list[dict[str, Any]]) -> None:
    with pytest.raises(ProviderUnavailable, match="unusable response") as info:
        await mocked(items).embed(["a", "b"])
    assert info.value.provider == "mock"


async def test_vectors_of_the_wrong_width_name_the_setting() -> None:
    embedder = mocked([item(0, [1.0, 0.0, 0.0, 0.0])], dimensions=3)
    with pytest.raises(ConfigError, match=r"openai_embedding_dimensions is 3\b.* 4 dimensions"):
        await embedder.embed(["a"])
