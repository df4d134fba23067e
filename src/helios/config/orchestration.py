"""Settings of the pipelines: orchestration (async thesis, evidence, gate) and personas."""

from __future__ import annotations

from pydantic import Field

from helios.catalog import Tier
from helios.config.section import Section


class AsyncThesisSettings(Section):
    enabled: bool = Field(default=True, description="run the thesis while evidence is gathered")
    timeout_sec: float = Field(default=120.0, gt=0)


class ParallelPrepSettings(Section):
    enabled: bool = Field(
        default=False, description="prepare the antithesis while the thesis streams (experiment)"
    )


class SingleCallSettings(Section):
    enabled: bool = Field(
        default=False,
        description="thesis, antithesis and synthesis in one model call (experiment)",
    )


class EvidenceSettings(Section):
    top_k: int = Field(default=6, ge=1, le=50)
    chunk_words: int = Field(default=120, ge=20, le=2000)
    max_document_bytes: int = Field(default=2_000_000, gt=0)
    cache_ttl_s: float = Field(default=1800.0, gt=0)


class GateSettings(Section):
    min_judge_score: float = Field(default=0.5, ge=0.0, le=1.0)


class OrchestrationSettings(Section):
    async_thesis: AsyncThesisSettings = Field(default_factory=AsyncThesisSettings)
    parallel_prep: ParallelPrepSettings = Field(default_factory=ParallelPrepSettings)
    single_call: SingleCallSettings = Field(default_factory=SingleCallSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    max_passes: int = Field(default=2, ge=1, le=10, description="synthesis passes at most")


class PersonaSettings(Section):
    """Overrides for one persona; unset fields keep the persona's shipped definition."""

    system: str | None = None
    prompt: str | None = Field(default=None, description="user-prompt template")
    model: str | None = None
    tier: Tier | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    streaming: bool | None = None
    description: str | None = None
