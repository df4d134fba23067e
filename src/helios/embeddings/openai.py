"""OpenAI embeddings (``text-embedding-3-*``) through the official SDK, for L3 by choice.

The local MiniLM stays the default; ``cache.semantic.embedder: openai`` picks this class.
It uses the endpoint ``providers.<cache.semantic.openai_provider>`` (key, ``base_url``,
timeout, headers) through the same client builder and error translation as the chat
adapter (:mod:`helios.providers.openai`), so an OpenAI-compatible server works too.

``name`` holds the model and the dimensions: vectors of two models, or of one model cut to
two sizes, must never meet in one index. Requests carry at most 2048 texts (the API's
limit) and at most 300,000 UTF-8 bytes: the API also caps a request at 300,000 tokens, and
no token is shorter than one byte, so the byte budget keeps any batch under it without a
tokenizer. Batches go one after another, gentler on rate limits than all at once.

Vectors are asked for as ``base64`` (little-endian float32), the SDK's own default too,
and decoded here with numpy. Measured on the 2-core development machine for one dense
1536-dimension vector: the reply is 2.7 times smaller than as JSON floats, and reading it
takes 0.08 ms instead of 12 ms (the SDK's response model visits every float), CPU time that
would block the event loop on every L3 lookup. A compatible server that ignores the format
and sends floats is understood too.

There are no retries here: L3 fails open, so a failed embedding costs a cache miss, and
waiting out a backoff on the way to the model would cost every caller more than that.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import cast

from helios.config.settings import Settings
from helios.embeddings.base import Embedder
from helios.errors import AuthenticationError, ConfigError, MissingDependency, ProviderUnavailable

try:
    import numpy as np
    from numpy.typing import NDArray
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependency("numpy", "embeddings", "OpenAI embeddings") from exc
try:
    import openai
    from openai.types import CreateEmbeddingResponse
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependency("openai", "openai", "OpenAI embeddings") from exc

from helios.providers.openai_client import async_client, translate_error

MAX_INPUTS_PER_REQUEST = 2048
MAX_BYTES_PER_REQUEST = 300_000


class OpenAIEmbedder(Embedder):
    """Embeds with ``client.embeddings.create``; ``dimensions`` is sent with every request."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        dimensions: int,
        *,
        provider_name: str = "openai",
    ) -> None:
        if dimensions < 1:
            raise ConfigError(f"embedding dimensions must be at least 1, not {dimensions}")
        self.name = f"openai:{model}:{dimensions}"
        self.dim = dimensions
        self.model = model
        self.provider_name = provider_name
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        """The embedder ``cache.semantic`` describes; a missing key fails here, not later."""
        semantic = settings.cache.semantic
        name, model = semantic.openai_provider, semantic.openai_embedding_model
        config = settings.provider(name)
        kind = config.resolved_kind(name)
        if kind != "openai":
            raise ConfigError(
                f"cache.semantic.openai_provider: providers.{name} is of kind {kind}; the "
                "OpenAI embedder needs an OpenAI(-compatible) endpoint"
            )
        try:
            client = async_client(name, model, settings)
        except AuthenticationError as exc:
            raise AuthenticationError(
                f"cache.semantic.embedder is openai: {config.missing_key_message(name)}",
                provider=name,
                model=model,
            ) from exc
        return cls(client, model, semantic.openai_embedding_dimensions, provider_name=name)

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        for start, stop in request_batches(texts):
            vectors[start:stop] = await self._request(list(texts[start:stop]))
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        # OpenAI's vectors are unit length already; a compatible server's may not be. A zero
        # row (a broken reply) stays zero instead of turning into NaNs.
        unit: NDArray[np.float32] = vectors / np.maximum(norms, np.float32(1e-12))
        return unit

    async def _request(self, texts: list[str]) -> NDArray[np.float32]:
        try:
            response = await self._client.embeddings.create(
                model=self.model, input=texts, dimensions=self.dim, encoding_format="base64"
            )
        except openai.OpenAIError as exc:
            raise translate_error(exc, provider=self.provider_name, model=self.model) from exc
        return self._rows(response, len(texts))

    def _rows(self, response: CreateEmbeddingResponse, count: int) -> NDArray[np.float32]:
        """The reply's vectors in input order (``index``), checked against the request."""
        items = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in items] != list(range(count)):
            raise self._unusable(f"{len(items)} embeddings for {count} texts")
        try:
            # The SDK leaves a base64 string as it came, whatever its type hints say.
            rows = [_decoded(cast(object, item.embedding)) for item in items]
        except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
            raise self._unusable(f"undecodable embedding: {exc}") from exc
        widths = {len(row) for row in rows}
        if widths != {self.dim}:
            raise ConfigError(
                f"cache.semantic.openai_embedding_dimensions is {self.dim}, but "
                f"{self.provider_name}:{self.model} returned vectors of "
                f"{', '.join(map(str, sorted(widths)))} dimensions (does it honour `dimensions`?)"
            )
        return np.stack(rows)

    def _unusable(self, what: str) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"unusable response: {what}", provider=self.provider_name, model=self.model
        )

    async def aclose(self) -> None:
        await self._client.close()


def _decoded(embedding: object) -> NDArray[np.float32]:
    """One vector from base64 float32 bytes, or from a JSON list of numbers."""
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding, validate=True)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not isinstance(embedding, list):
        raise TypeError(f"expected a base64 string or a list, got {type(embedding).__name__}")
    vector = np.asarray(embedding, dtype=np.float32)
    if vector.ndim != 1:
        raise TypeError(f"expected a flat list of numbers, got {vector.ndim} levels")
    return vector


def request_batches(
    texts: Sequence[str],
    max_inputs: int = MAX_INPUTS_PER_REQUEST,
    max_bytes: int = MAX_BYTES_PER_REQUEST,
) -> list[tuple[int, int]]:
    """``(start, stop)`` slices of ``texts`` within both limits; a text over ``max_bytes``
    alone gets a request of its own (the API then judges it)."""
    batches: list[tuple[int, int]] = []
    start, size = 0, 0
    for index, text in enumerate(texts):
        length = len(text.encode())
        if index > start and (index - start >= max_inputs or size + length > max_bytes):
            batches.append((start, index))
            start, size = index, 0
        size += length
    if start < len(texts):
        batches.append((start, len(texts)))
    return batches
