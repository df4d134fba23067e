"""The economic router's policy: thresholds, weights and fallbacks, all configuration.

The settings section ``router`` holds one :class:`RouterSettings`. A request's complexity
score is the sum of ``feature_weights[f] * feature[f]`` over the features of
:mod:`helios.governance.complexity` (each feature lies in 0..1), capped at 1. A score above
``strong_above`` goes to the strong tier, above ``fast_above`` to the fast tier, anything
else to the local tier. Example ``helios.yaml``::

    router:
      strong_above: 0.7
      persona_weights: {synthesis: 1.0}
      fallbacks: {strong: [fast], fast: [local], local: []}
"""

from __future__ import annotations

from pydantic import Field, model_validator

from helios.catalog import Tier
from helios.config.section import Section

DEFAULT_KEY = "default"
"""The weight used for a persona or task type missing from its table (and for no persona)."""


def _persona_weights() -> dict[str, float]:
    # The synthesis and the judge reconcile or grade everything before them: they need the
    # strongest model most; the antithesis must out-think the thesis.
    return {"thesis": 0.2, "antithesis": 0.55, "synthesis": 0.9, "judge": 0.85, DEFAULT_KEY: 0.3}


def _task_type_weights() -> dict[str, float]:
    return {
        "chat": 0.1,
        "factual": 0.1,
        "classification": 0.1,
        "extraction": 0.2,
        "summarisation": 0.3,
        "summarization": 0.3,
        "general": 0.3,
        "creative": 0.4,
        "planning": 0.6,
        "code": 0.75,
        "coding": 0.75,
        "analysis": 0.75,
        "math": 0.8,
        "maths": 0.8,
        "reasoning": 0.9,
        DEFAULT_KEY: 0.3,
    }


def _feature_weights() -> dict[str, float]:
    # How far one feature at full strength moves the score on its own. They add up past 1 on
    # purpose: any two strong signals together reach the strong tier.
    return {
        "length": 0.15,
        "task_type": 0.25,
        "persona": 0.15,
        "reasoning": 0.25,
        "code": 0.3,
        "maths": 0.3,
        "output": 0.15,
    }


def _fallbacks() -> dict[Tier, list[Tier]]:
    return {"strong": ["fast", "local"], "fast": ["local"], "local": []}


class RouterSettings(Section):
    """How the economic router scores requests and picks a tier (section ``router``)."""

    strong_above: float = Field(default=0.65, ge=0.0, le=1.0)
    fast_above: float = Field(default=0.3, ge=0.0, le=1.0)
    persona_weights: dict[str, float] = Field(
        default_factory=_persona_weights,
        description="persona -> 0..1; 'default' covers the others and requests without one",
    )
    task_type_weights: dict[str, float] = Field(
        default_factory=_task_type_weights,
        description="task type -> 0..1; 'default' covers the others",
    )
    feature_weights: dict[str, float] = Field(
        default_factory=_feature_weights,
        description="complexity feature -> its weight in the score (a missing one counts 0)",
    )
    fallbacks: dict[Tier, list[Tier]] = Field(
        default_factory=_fallbacks,
        description="tier -> tiers tried next, in order, when its model fails or is unhealthy",
    )
    avoid_error_rate_above: float = Field(default=0.2, ge=0.0, le=1.0)
    min_observations: int = Field(
        default=20, ge=1, description="calls a model needs before its error rate counts"
    )
    length_saturation_tokens: int = Field(
        default=8000, gt=1, description="prompt tokens at which the length feature reaches 1"
    )
    output_saturation_tokens: int = Field(
        default=4000, gt=1, description="max_tokens at which the output feature reaches 1"
    )

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> RouterSettings:
        if self.fast_above > self.strong_above:
            raise ValueError("fast_above must not exceed strong_above")
        return self

    def persona_weight(self, persona: str | None) -> float:
        table = self.persona_weights
        return table.get(persona or DEFAULT_KEY, table.get(DEFAULT_KEY, 0.0))

    def task_type_weight(self, task_type: str) -> float:
        table = self.task_type_weights
        return table.get(task_type, table.get(DEFAULT_KEY, 0.0))

    def tier_for(self, score: float) -> Tier:
        if score > self.strong_above:
            return "strong"
        if score > self.fast_above:
            return "fast"
        return "local"
