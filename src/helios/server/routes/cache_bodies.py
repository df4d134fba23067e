"""The cache REST API's request and answer bodies and the limits on what one call may carry
(:mod:`helios.server.routes.cache` serves them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from helios.cache.reports import (
    API_LAYER_NAMES,
    LAYERS,
    Layer,
)
from helios.cache.supplied import (
    Turn,
)
from helios.server.limits import MAX_TOKENS


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """What one call may carry. Constants, not settings: they protect the server from
    oversized or hostile input and do not change what the cache does (L3 has its own,
    smaller question limit, ``helios.cache.semantic.MAX_QUESTION_CHARS``, and skips longer
    questions rather than refusing them)."""

    text_chars: int = 32 * 1024
    """``input_text``, ``system_prompt`` and each earlier turn's ``content``."""
    response_chars: int = 256 * 1024
    """``response_data``: a long reply is normal, but a cache entry is not a file store."""
    messages: int = 100
    """Earlier turns of the conversation."""
    body_bytes: int = 8 * 1024 * 1024
    """The whole JSON body, refused before it is read (JSON escapes may triple a text)."""


LIMITS = ApiLimits()

_LAYER_BY_NAME: dict[str, Layer] = {
    **{name: layer for layer, name in API_LAYER_NAMES.items()},
    **{layer: layer for layer in LAYERS},
}
VALID_LAYERS = ", ".join([*API_LAYER_NAMES.values(), *LAYERS])


def parse_layer(name: str) -> Layer | None:
    """``L2``, ``l2`` or ``L2_REDIS_EXACT`` -> ``"L2"``; ``None`` for an unknown name."""
    return _LAYER_BY_NAME.get(name.strip().upper())


# -- bodies ---------------------------------------------------------------------------------
class ConversationBody(BaseModel):
    """The fields that make up the :class:`~helios.messages.Request` (and so the keys).
    Strict: ``false`` is not a number, ``"0.5"`` not a float."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input_text: str = Field(min_length=1, description="the user's (last) message")
    task_type: str = Field(default="general", min_length=1, max_length=256)
    system_prompt: str | None = None
    messages: list[Turn] = Field(
        default_factory=list, description="earlier turns; input_text follows them"
    )
    tenant: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="admin keys only: act for this tenant; default: the key's",
    )
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)


class LookupBody(ConversationBody):
    model: str | None = Field(
        default=None, max_length=256, description="model spec; default: the settings' default"
    )
    use_l1: bool = True
    use_l2: bool = True
    use_l3: bool = True
    similarity_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="L3 cosine; default: the settings'"
    )


class StoreBody(ConversationBody):
    response_data: str | dict[str, Any] = Field(
        description="the reply to cache: text, or a JSON object (handed back as one)"
    )
    model_used: str | None = Field(
        default=None,
        max_length=256,
        description="model spec; default: the settings' default. A model Helios does not know "
        "is stored as given (its cost unknown)",
    )
    tokens_used: int = Field(
        default=0, ge=0, le=MAX_TOKENS, description="output tokens of the reply"
    )
    input_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS)
    store_in_l1: bool = Field(default=False, description="mark the prompt prefix warm")
    store_in_l2: bool = True
    store_in_l3: bool = True


class InvalidateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    layer: str | None = Field(default=None, description=f"one of {VALID_LAYERS}; null: all")
    task_type: str | None = Field(default=None, min_length=1, max_length=256)
    tenant: str | None = Field(default=None, min_length=1, max_length=256)
    key: str | None = Field(default=None, min_length=1, max_length=512, description="an L2 key")

    @field_validator("layer")
    @classmethod
    def _known_layer(cls, value: str | None) -> str | None:
        if value is not None and parse_layer(value) is None:
            raise ValueError(f"unknown layer '{value}': one of {VALID_LAYERS}")
        return value


# -- answers (documentation of the JSON the routes write) --------------------------------------
class LookupResult(BaseModel):
    hit: bool
    layer: str | None = Field(description="the answering layer's API name, null on a miss")
    cached_response: str | dict[str, Any] | None = Field(
        description="the reply as it was stored: text, or a JSON object"
    )
    confidence: float = Field(description="1 for L2, the verifier's for L3, 0 on a miss")
    l1_result: dict[str, Any]
    l2_result: dict[str, Any]
    l3_result: dict[str, Any]
    lookup_time_ms: float
    tokens_saved: int
    cost_saved: float


class StoreResult(BaseModel):
    layers_stored: list[str]
    key: str | None = Field(description="the request's L2 key (for invalidation); null: no L2")


class InvalidateResult(BaseModel):
    removed: dict[str, int] = Field(description="entries removed per layer (API names)")
    total: int


class LayerHealthResult(BaseModel):
    status: Literal["ok", "degraded", "disabled"]
    backend: str | None
    detail: str
    breaker: Literal["closed", "open", "half-open"] | None = None


class HealthResult(BaseModel):
    status: Literal["ok", "degraded", "disabled"]
    layers: dict[str, LayerHealthResult]
