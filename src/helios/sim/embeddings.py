"""OpenAI Embeddings (``POST /v1/embeddings``): the wire format, with made-up vectors.

The request and reply follow the real API: ``input`` is one string or a list of at most
2048 non-empty strings, ``dimensions`` shortens the vector, ``encoding_format`` is
``float`` (the default: a JSON list) or ``base64`` (little-endian float32 bytes, which the
SDK asks for and decodes itself when the caller names no format). Model rules mirror
OpenAI's: ``text-embedding-3-small`` gives up to 1536 dimensions, ``-large`` up to 3072,
``text-embedding-ada-002`` always 1536 and refuses ``dimensions``; any other model id is
accepted (as elsewhere in the simulator) with 1536 dimensions by default and up to 3072.
Limits are counted with the simulator's token approximation (:func:`count_tokens`).

**The vectors are not a semantic model.** Each text becomes a hashed bag of its
lower-cased words and word pairs (unigrams and bigrams), each adding +1 or -1 to one of
``dimensions`` buckets, then unit length. So identical texts get identical vectors, texts
sharing most of their words are close, texts sharing none are near orthogonal, and a
paraphrase with other words is *not* close. The model id salts the hash: two models'
vectors for one text are unrelated, as real ones are. Unlike the real API a shorter
``dimensions`` is not a prefix of the full vector.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from helios.sim.config import FaultKind
from helios.sim.openai import OpenAIProtocol
from helios.sim.text import count_tokens
from helios.sim.wire import BadRequest, ErrorReply, JSONObject, need, want

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000
DEFAULT_DIMENSIONS = 1536
MAX_DIMENSIONS = 3072

# (native width, whether `dimensions` may shorten it) for the models OpenAI documents.
_MODELS: dict[str, tuple[int, bool]] = {
    "text-embedding-3-small": (1536, True),
    "text-embedding-3-large": (3072, True),
    "text-embedding-ada-002": (1536, False),
}
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class EmbeddingCall:
    """An embeddings request as the simulator needs it."""

    model: str
    texts: tuple[str, ...]
    dimensions: int
    base64: bool  # encoding_format "base64" rather than "float"

    @property
    def prompt_tokens(self) -> int:
        return sum(count_tokens(text) for text in self.texts)


class EmbeddingsProtocol:
    """Parses requests and builds replies; holds no state. Errors look like chat's."""

    _errors = OpenAIProtocol()

    def parse(self, body: Mapping[str, Any]) -> EmbeddingCall:
        model = need(body, "model", str)
        texts = _texts(body.get("input"))
        encoding = want(body, "encoding_format", str, default="float")
        if encoding not in ("float", "base64"):
            raise BadRequest(f"encoding_format: expected 'float' or 'base64', got {encoding!r}")
        call = EmbeddingCall(model, texts, _dimensions(body, model), base64=encoding == "base64")
        if call.prompt_tokens > MAX_REQUEST_TOKENS:
            raise BadRequest(
                f"input: {call.prompt_tokens} tokens in one request; the limit is "
                f"{MAX_REQUEST_TOKENS}"
            )
        return call

    def body(self, call: EmbeddingCall) -> JSONObject:
        tokens = call.prompt_tokens
        return {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": _encoded(embed(text, call.model, call.dimensions), call),
                }
                for index, text in enumerate(call.texts)
            ],
            "model": call.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def error(self, kind: FaultKind, message: str | None, retry_after_s: float) -> ErrorReply:
        return self._errors.error(kind, message, retry_after_s)


def embed(text: str, model: str, dimensions: int) -> list[float]:
    """The simulator's vector for ``text``: unit length, values exact in float32 (see above)."""
    words = _WORD.findall(text.lower())
    features = words + [f"{a} {b}" for a, b in pairwise(words)]
    # n words give 2n - 1 features of +-1: an odd sum, so the vector is never all zeros.
    # A text without words (punctuation only) stands for itself, one feature.
    buckets = [0.0] * dimensions
    for feature in features or [text]:
        digest = hashlib.blake2b(f"{model}\0{feature}".encode(), digest_size=8).digest()
        number = int.from_bytes(digest, "little")
        buckets[(number >> 1) % dimensions] += 1.0 if number & 1 else -1.0
    norm = math.sqrt(sum(value * value for value in buckets))
    packed = struct.pack(f"<{dimensions}f", *(value / norm for value in buckets))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _encoded(vector: list[float], call: EmbeddingCall) -> list[float] | str:
    if call.base64:
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    # Nine significant digits identify a float32 exactly, so the short JSON numbers decode
    # to the same float32 values as the base64 bytes do. A vector holds few distinct values
    # (small counts over one norm): format each once.
    short = {value: float(f"{value:.9g}") for value in set(vector)}
    return [short[value] for value in vector]


def _texts(value: object) -> tuple[str, ...]:
    if value is None:
        raise BadRequest("input: field required")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list):
        raise BadRequest(
            f"input: expected a string or a list of strings, got {type(value).__name__}"
        )
    if not texts:
        raise BadRequest("input: at least one text is required")
    if len(texts) > MAX_INPUTS:
        raise BadRequest(f"input: {len(texts)} texts in one request; the limit is {MAX_INPUTS}")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            # The real API also takes token ids; the simulator has no tokenizer to match them.
            raise BadRequest(f"input.{index}: expected a string (token arrays are not simulated)")
        if not text:
            raise BadRequest(f"input.{index}: must not be empty")
        if count_tokens(text) > MAX_INPUT_TOKENS:
            raise BadRequest(
                f"input.{index}: {count_tokens(text)} tokens; the limit is {MAX_INPUT_TOKENS}"
            )
    return tuple(texts)


def _dimensions(body: Mapping[str, Any], model: str) -> int:
    native, shortens = _MODELS.get(model, (MAX_DIMENSIONS, True))
    requested = want(body, "dimensions", int, default=None)
    if requested is None:
        return native if model in _MODELS else DEFAULT_DIMENSIONS
    if not shortens:
        raise BadRequest(f"dimensions: {model} does not support specifying dimensions")
    if not 1 <= requested <= native:
        raise BadRequest(f"dimensions: must be between 1 and {native} for {model}")
    return requested
