"""What a dialectic run returns, and what a live display is told while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from helios.messages import Completion
from helios.pipeline.evidence import Evidence
from helios.pipeline.gate import GateResult


@dataclass(frozen=True, slots=True)
class StageRecord:
    """One persona call as the summary table shows it."""

    stage: str
    persona: str
    pass_number: int
    provider: str
    model: str
    cache_layer: str | None
    streamed: bool
    ttft_s: float
    duration_s: float
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    saved_usd: float | None = None
    perceived_improvement: float = 0.0
    """1 - TTFT / duration: how much of the wait a streaming reader sees text."""

    @classmethod
    def of(cls, stage: str, persona: str, pass_number: int, c: Completion) -> StageRecord:
        return cls(
            stage=stage,
            persona=persona,
            pass_number=pass_number,
            provider=c.provider,
            model=c.model,
            cache_layer=c.cache_layer,
            streamed=c.streamed,
            ttft_s=c.ttft_s,
            duration_s=c.duration_s,
            input_tokens=c.usage.total_input_tokens,
            output_tokens=c.usage.output_tokens,
            cost_usd=c.cost_usd,
            saved_usd=c.saved_usd,
            perceived_improvement=c.perceived_improvement,
        )


@dataclass(frozen=True, slots=True)
class PassOutcome:
    number: int
    text: str
    gate: GateResult


@dataclass(frozen=True)
class DialecticResult:
    task_id: str
    goal: str
    answer: str
    accepted_pass: int | None
    """The synthesis pass the gate accepted; ``None`` when no pass passed."""
    passes: tuple[PassOutcome, ...]
    evidence: Evidence
    stages: tuple[StageRecord, ...]
    async_fallback: str | None
    duration_s: float
    flags: dict[str, bool | int | float | str] = field(default_factory=dict)

    @property
    def cost_usd(self) -> float:
        return sum(stage.cost_usd or 0.0 for stage in self.stages)

    @property
    def saved_usd(self) -> float:
        return sum(stage.saved_usd or 0.0 for stage in self.stages)

    @property
    def unpriced_stages(self) -> int:
        """Persona calls without a known cost (a model missing from the catalogue)."""
        return sum(stage.cost_usd is None for stage in self.stages)

    @property
    def cost_known(self) -> bool:
        """Whether any call had a price: with none, ``cost_usd`` is unknown, not 0."""
        return not self.stages or self.unpriced_stages < len(self.stages)

    @property
    def input_tokens(self) -> int:
        return sum(stage.input_tokens for stage in self.stages)

    @property
    def output_tokens(self) -> int:
        return sum(stage.output_tokens for stage in self.stages)

    @property
    def cache_hits(self) -> int:
        return sum(stage.cache_layer is not None for stage in self.stages)

    def to_dict(self) -> dict[str, Any]:
        """One JSON-ready document with everything the CLI's ``--json`` prints."""
        return {
            "task_id": self.task_id,
            "goal": self.goal,
            "answer": self.answer,
            "accepted_pass": self.accepted_pass,
            "passed": self.accepted_pass is not None,
            "async_fallback": self.async_fallback,
            "flags": self.flags,
            "evidence": {
                "documents": self.evidence.documents,
                "chunks": self.evidence.chunks,
                "from_cache": self.evidence.from_cache,
                "passages": [
                    {
                        "id": p.id,
                        "source": p.source,
                        "start_line": p.start_line,
                        "end_line": p.end_line,
                        "score": round(p.score, 4),
                        "text": p.text,
                    }
                    for p in self.evidence.passages
                ],
            },
            "passes": [
                {
                    "number": outcome.number,
                    "text": outcome.text,
                    "passed": outcome.gate.passed,
                    "evidence_ok": outcome.gate.evidence.ok,
                    "evidence_problems": list(outcome.gate.evidence.problems),
                    "citations": list(outcome.gate.evidence.cited),
                    "judge": outcome.gate.verdict.model_dump(by_alias=True),
                }
                for outcome in self.passes
            ],
            "stages": [
                {
                    "stage": s.stage,
                    "persona": s.persona,
                    "pass": s.pass_number,
                    "provider": s.provider,
                    "model": s.model,
                    "cache": s.cache_layer,
                    "streamed": s.streamed,
                    "ttft_s": s.ttft_s,
                    "duration_s": s.duration_s,
                    "perceived_improvement": s.perceived_improvement,
                    "input_tokens": s.input_tokens,
                    "output_tokens": s.output_tokens,
                    "cost_usd": s.cost_usd,
                    "saved_usd": s.saved_usd,
                }
                for s in self.stages
            ],
            "totals": {
                "duration_s": self.duration_s,
                "cost_usd": self.cost_usd if self.cost_known else None,
                "saved_usd": self.saved_usd if self.cost_known else None,
                "unpriced_calls": self.unpriced_stages,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "cache_hits": self.cache_hits,
                "persona_calls": len(self.stages),
            },
        }


class PipelineObserver(Protocol):
    """Told about progress as it happens (the CLI's live display); must not block."""

    def stage_started(self, stage: str, persona: str, pass_number: int, model: str) -> None: ...

    def chunk(self, stage: str, text: str) -> None: ...

    def stage_restarted(self, stage: str, reason: str) -> None:
        """The stage's stream broke and is tried again: the text shown so far is void."""
        ...

    def stage_finished(self, record: StageRecord) -> None: ...

    def note(self, message: str) -> None: ...


class SilentObserver:
    """Ignores progress: the default when nobody is watching (the Python API, tests)."""

    def stage_started(self, stage: str, persona: str, pass_number: int, model: str) -> None:
        pass

    def chunk(self, stage: str, text: str) -> None:
        pass

    def stage_restarted(self, stage: str, reason: str) -> None:
        pass

    def stage_finished(self, record: StageRecord) -> None:
        pass

    def note(self, message: str) -> None:
        pass
