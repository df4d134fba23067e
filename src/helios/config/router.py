"""The economic router's policy: thresholds, weights and fallbacks, all configuration.

The settings section ``router`` holds one :class:`RouterSettings`. A request's complexity
score is the sum of ``feature_weights[f] * feature[f]`` over the features of
:mod:`helios.governance.complexity` (each feature lies in 0..1), capped at 1. A score above
``strong_above`` goes to the strong tier. Anything else goes to the fast tier, except a
request whose intent is one of ``local_intents`` and whose score is at most ``fast_above``:
that one goes to the local tier. ``local_intents`` is empty by default: name only the
intents the configured local model answers well. Example ``helios.yaml``::

    router:
      strong_above: 0.5
      local_intents: [chat, classification]
      intent_weights: {design: 1.0}
      persona_weights: {synthesis: 1.0}
      fallbacks: {strong: [fast], fast: [local], local: []}

The defaults were calibrated on the tuning half of a labelled prompt set
(``bench/data/``, ``bench/router_calibration.py``).
"""

from __future__ import annotations

from typing import Annotated, Literal, cast, get_args

from pydantic import Field, model_validator

from helios.catalog import Tier
from helios.config.section import Section

Feature = Literal[
    "intent", "hard_terms", "length", "task_type", "persona", "code", "maths", "output"
]
FEATURES: tuple[Feature, ...] = get_args(Feature)
Intent = Literal[
    "proof", "design", "analysis", "reasoning", "code", "maths", "summarisation",
    "extraction", "translation", "classification", "rewrite", "creative", "lookup", "chat",
    "other",
]  # fmt: skip
INTENTS: tuple[Intent, ...] = get_args(Intent)
"""What a prompt asks for (:mod:`helios.governance.intents`); ``other``: no cue matched."""
Weight = Annotated[float, Field(ge=0.0, le=1.0)]

DEFAULT_KEY = "default"
"""The weight used for a persona or task type missing from its table (and for no persona)."""


def _persona_weights() -> dict[str, float]:
    # The synthesis and the judge reconcile or grade everything before them: they need the
    # strongest model most; the antithesis must out-think the thesis.
    return {"thesis": 0.2, "antithesis": 0.55, "synthesis": 0.9, "judge": 0.85, DEFAULT_KEY: 0.0}


def _task_type_weights() -> dict[str, float]:
    return {
        "chat": 0.1,
        "factual": 0.1,
        "classification": 0.1,
        "extraction": 0.2,
        "summarisation": 0.3,
        "summarization": 0.3,
        "general": 0.0,
        "creative": 0.4,
        "planning": 0.6,
        "code": 0.75,
        "coding": 0.75,
        "analysis": 0.75,
        "math": 0.8,
        "maths": 0.8,
        "reasoning": 0.9,
        DEFAULT_KEY: 0.0,
    }


def _intent_weights() -> dict[Intent, float]:
    # Proofs, designs, long-form analyses and multi-step reasoning need the strong model
    # however short they are; routine tasks do not, however long their material.
    return {
        "proof": 1.0,
        "design": 0.9,
        "analysis": 0.85,
        "reasoning": 0.8,
        "code": 0.3,
        "maths": 0.25,
        "summarisation": 0.1,
        "extraction": 0.1,
        "translation": 0.05,
        "classification": 0.05,
        "rewrite": 0.05,
        "creative": 0.1,
        "lookup": 0.0,
        "chat": 0.0,
        "other": 0.2,
    }


def _feature_weights() -> dict[Feature, float]:
    # How far one feature at full strength moves the score on its own. The intent leads:
    # length, code and maths say little about how hard a task is on their own.
    return {
        "intent": 0.6,
        "hard_terms": 0.3,
        "length": 0.1,
        "task_type": 0.15,
        "persona": 0.15,
        "code": 0.05,
        "maths": 0.05,
        "output": 0.1,
    }


def _fallbacks() -> dict[Tier, list[Tier]]:
    return {"strong": ["fast", "local"], "fast": ["local"], "local": []}


class RouterSettings(Section):
    """How the economic router scores requests and picks a tier (section ``router``)."""

    strong_above: float = Field(
        default=0.45, ge=0.0, le=1.0, description="a score above this goes to the strong tier"
    )
    fast_above: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="a score at most this, of an intent in local_intents, goes to the local tier",
    )
    local_intents: list[Intent] = Field(
        default_factory=list,
        description="intents the local model answers well enough to take (none by default)",
    )
    intent_weights: dict[Intent, Weight] = Field(
        default_factory=_intent_weights,
        description="intent -> 0..1, the value of the intent feature (a missing one counts 0)",
    )
    persona_weights: dict[str, Weight] = Field(
        default_factory=_persona_weights,
        description="persona -> 0..1; 'default' covers the others and requests without one",
    )
    task_type_weights: dict[str, Weight] = Field(
        default_factory=_task_type_weights,
        description="task type -> 0..1; 'default' covers the others",
    )
    feature_weights: dict[Feature, Weight] = Field(
        default_factory=_feature_weights,
        description="complexity feature -> its weight in the score (a missing one counts 0)",
    )
    fallbacks: dict[Tier, list[Tier]] = Field(
        default_factory=_fallbacks,
        description="tier -> tiers tried next, in order, when its model fails or is unhealthy",
    )
    readiness_cache_s: float = Field(
        default=5.0,
        ge=0.0,
        description="how long a model seen ready is trusted without probing again (0: never)",
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

    def feature_weight(self, feature: str) -> float:
        """``feature_weights[feature]``; 0 for a feature it leaves out (or none such)."""
        return self.feature_weights.get(cast(Feature, feature), 0.0)

    def intent_weight(self, intent: str) -> float:
        """``intent_weights[intent]``; 0 for an intent it leaves out."""
        return self.intent_weights.get(cast(Intent, intent), 0.0)

    def persona_weight(self, persona: str | None) -> float:
        table = self.persona_weights
        return table.get(persona or DEFAULT_KEY, table.get(DEFAULT_KEY, 0.0))

    def task_type_weight(self, task_type: str) -> float:
        table = self.task_type_weights
        return table.get(task_type, table.get(DEFAULT_KEY, 0.0))

    def tier_for(self, score: float, intent: str = "other") -> tuple[Tier, str]:
        """The tier for a score and an intent, and the rule that picked it, in words."""
        if score > self.strong_above:
            return "strong", f"score {score:.2f} > strong_above {self.strong_above:g}"
        if intent in self.local_intents and score <= self.fast_above:
            return "local", (
                f"score {score:.2f} <= fast_above {self.fast_above:g} and intent {intent} "
                "in local_intents"
            )
        if intent in self.local_intents:
            return "fast", f"score {score:.2f} > fast_above {self.fast_above:g}: not local"
        return "fast", f"score {score:.2f} <= strong_above {self.strong_above:g}"
