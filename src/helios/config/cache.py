"""Settings of the response cache: L2 exact match, with L1 (``prompt``) and L3 (``semantic``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from helios.config.breaker import BreakerSettings, breaker_defaults
from helios.config.paths import data_dir
from helios.config.section import Section
from helios.messages import CacheTTL


class PromptCacheSettings(Section):
    """L1: provider prompt caching (breakpoints, ``prompt_cache_key``, warm-prefix report)."""

    enabled: bool = True
    ttl: CacheTTL = Field(default="5m", description="Anthropic breakpoints: 5m or 1h")


class SemanticCacheSettings(Section):
    """L3: a reply to a question that *means* the same, in the same context."""

    enabled: bool = True
    index: Literal["usearch", "pgvector"] = "usearch"
    path: Path | None = Field(
        default=None,
        description="SQLite file of the usearch index's entries; default: the L2 SQLite file",
    )
    postgres_url: str | None = Field(default=None, description="required for index pgvector")
    postgres_breaker: BreakerSettings = Field(
        default_factory=lambda: breaker_defaults(0.1),
        description="pgvector: deadline per operation and circuit breaker",
    )
    table: str = Field(default="helios_semantic_cache", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    embedder: Literal["local", "openai"] = "local"
    openai_embedding_model: str = "text-embedding-3-small"
    openai_embedding_dimensions: int = Field(
        default=1536, ge=1, le=3072, description="sent as `dimensions` (text-embedding-3-*)"
    )
    openai_provider: str = Field(
        default="openai", description="providers.<name> whose key and base_url embed"
    )
    threshold: float = Field(default=0.85, ge=0.0, le=1.0, description="cosine similarity")
    task_thresholds: dict[str, float] = Field(
        default_factory=dict, description="per task type; overrides threshold"
    )
    ttl_s: float = Field(default=86_400.0, gt=0)
    max_temperature: float = Field(
        default=0.7, ge=0.0, le=2.0, description="requests sampled hotter skip L3"
    )
    skip_task_types: list[str] = Field(
        default_factory=lambda: ["dialectic", "dag", "plan", "ask"],
        description="task types whose prompts are filled-in templates: L2 only",
    )
    verify: bool = Field(default=True, description="reject negation/entity/number traps")
    aligned_threshold: float = Field(
        default=0.70,
        ge=0.0,
        le=1.0,
        description="with verify: below threshold, a candidate whose every content word pairs "
        "with the question's may still serve down to this cosine (1 = off)",
    )
    candidates: int = Field(default=5, ge=1, le=100, description="nearest entries verified")
    alias_hits: bool = Field(
        default=True,
        description="keep an L3 hit's reply under the question's own L2 key too, so the same "
        "wording again is an exact hit",
    )

    @field_validator("task_thresholds")
    @classmethod
    def _thresholds_are_cosines(cls, value: dict[str, float]) -> dict[str, float]:
        for task_type, threshold in value.items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"{task_type}: {threshold} is not between 0 and 1")
        return value

    def threshold_for(self, task_type: str) -> float:
        return self.task_thresholds.get(task_type, self.threshold)


class CacheSettings(Section):
    """The response cache: L2 exact match here, ``prompt`` (L1) and ``semantic`` (L3) nested.
    ``RESPONSE_CACHE_ENABLED`` aliases ``enabled``, which switches every layer."""

    enabled: bool = True
    backend: Literal["sqlite", "memory", "redis"] = "sqlite"
    path: Path | None = Field(default=None, description="SQLite file; default: user data dir")
    ttl_s: float = Field(default=3600.0, gt=0)
    max_entries: int = Field(
        default=500, ge=1, description="memory/SQLite; Redis uses the server's maxmemory"
    )
    redis_url: str | None = Field(default=None, description="required for backend redis")
    redis_prefix: str = "helios:cache"
    redis_breaker: BreakerSettings = Field(
        default_factory=lambda: breaker_defaults(0.05),
        description="Redis: deadline per operation and circuit breaker",
    )
    prompt: PromptCacheSettings = Field(default_factory=PromptCacheSettings)
    semantic: SemanticCacheSettings = Field(default_factory=SemanticCacheSettings)

    def resolved_path(self) -> Path:
        return self.path if self.path is not None else data_dir() / "cache.sqlite3"

    def semantic_path(self) -> Path:
        """Where the usearch index keeps its entries (its index files lie next to it)."""
        return self.semantic.path if self.semantic.path is not None else self.resolved_path()
