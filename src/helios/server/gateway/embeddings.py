"""``POST /v1/embeddings``: the local MiniLM or OpenAI's embedding models, OpenAI's shape.

``model`` is ``local`` (also ``all-MiniLM-L6-v2``, 384 dimensions, run here) or an OpenAI
embedding model (``text-embedding-3-small``/``-large``, or ``openai:<model>``, with the
settings' OpenAI key). ``input`` is a string or a list of strings (token arrays are
refused); ``encoding_format`` ``float`` or ``base64`` (what the official SDK asks for by
default: little-endian float32); ``dimensions`` for the OpenAI models. ``usage`` counts
tokens approximately (characters / 4): these models bill by their own tokenizer.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from helios.embeddings.base import Embedder
from helios.runtime import Runtime
from helios.server.gateway.errors import GatewayError, invalid

LOCAL_NAMES = frozenset(
    {"local", "all-minilm-l6-v2", "minilm", "sentence-transformers/all-minilm-l6-v2"}
)
OPENAI_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}
MAX_INPUTS = 2048
MAX_INPUT_CHARS = 32_768


class EmbeddingsRequest(BaseModel):
    # official clients send fields Helios does not know (newer API versions): ignored
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"model": "local", "input": "What is a vector index?"}]},
    )

    model: str = Field(examples=["local"])
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=3072)
    user: str | None = Field(default=None, max_length=256)


def _texts(body: EmbeddingsRequest) -> list[str]:
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts:
        raise invalid("input", "give at least one text")
    if len(texts) > MAX_INPUTS:
        raise invalid("input", f"at most {MAX_INPUTS} texts a request")
    for index, text in enumerate(texts):
        if not text:
            raise invalid(f"input[{index}]", "an empty text has no embedding")
        if len(text) > MAX_INPUT_CHARS:
            raise invalid(f"input[{index}]", f"longer than {MAX_INPUT_CHARS} characters")
    return texts


def _embedder(runtime: Runtime, body: EmbeddingsRequest) -> Embedder:
    name = body.model.strip()
    if name.lower() in LOCAL_NAMES:
        if body.dimensions not in (None, 384):
            raise invalid("dimensions", "the local model gives 384 dimensions")
        return runtime.local_embedder()
    model = name.removeprefix("openai:")
    if model not in OPENAI_DIMENSIONS:
        raise GatewayError(
            404,
            "not_found",
            f"no embedding model '{name}': use local, text-embedding-3-small or "
            "text-embedding-3-large",
            param="model",
        )
    return runtime.openai_embedder(model, body.dimensions or OPENAI_DIMENSIONS[model])


async def embed(runtime: Runtime, body: EmbeddingsRequest) -> dict[str, Any]:
    texts = _texts(body)
    embedder = _embedder(runtime, body)
    vectors = await embedder.embed(texts)
    data = []
    for index, vector in enumerate(vectors):
        embedding: Any = (
            base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
            if body.encoding_format == "base64"
            else [float(value) for value in vector]
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(max(1, len(text) // 4) for text in texts)
    return {
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
