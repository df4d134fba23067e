"""How hard a request looks: a 0..1 score from cheap textual features, no model involved.

Each feature lies in 0..1:

- ``length``: prompt tokens (about chars / 4), log-scaled up to ``length_saturation_tokens``;
- ``task_type`` and ``persona``: their weights from the settings' tables;
- ``reasoning``: "why", "prove", "trade-off", "step by step", comparisons, ... (3 hits = 1);
- ``code``: fenced blocks, ``def``/``class``, language keywords, brace and semicolon density;
- ``maths``: arithmetic expressions, LaTeX, "integral", "equation", ... (3 hits = 1);
- ``output``: the expected reply length, from ``max_tokens`` (log-scaled) or phrases such
  as "write an essay" or "a detailed report".

The score is ``min(1, sum(feature_weights[f] * feature[f]))``. The function is pure and
deterministic: the same request and settings always give the same score.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from helios.config.router import RouterSettings
from helios.messages import Request

CHARS_PER_TOKEN = 4
FEATURES = ("length", "task_type", "persona", "reasoning", "code", "maths", "output")

_REASONING = re.compile(
    r"\b(why|prove|proof|derive|justify|explain how|reason(?:ing)?|trade-?offs?|"
    r"step[- ]by[- ]step|compare|comparison|contrast|versus|vs\.?|pros and cons|"
    r"implications?|evaluate|critique|analy[sz]e|what if|counter-?argument|"
    r"better than|worse than|advantages?|disadvantages?)\b",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```")
_CODE_WORDS = re.compile(
    r"(\bdef |\bclass |\bimport |\breturn\b|\bfunction\b|\bconst |\blet |\bvar |"
    r"#include|\bpublic |\bfn |\bfunc |\bSELECT\b|\bint main|=>|->|\basync |\bawait\b|"
    r"\bstack ?trace\b|\bTraceback\b|\bexception\b|\brefactor|\bdebug|\bunit tests?\b|"
    r"\bcompile|\bimplement)",
    re.IGNORECASE,
)
_CODE_PUNCTUATION = re.compile(r"[{};]")
_MATHS = re.compile(
    r"(\d+(?:\.\d+)?\s*[-+*/^=<>]\s*\d+|\\(?:frac|int|sum|sqrt|prod|lim|partial|infty|cdot)|"
    r"\$[^$\n]+\$|\b(?:integral|integrate|equation|derivative|differentiate|theorem|lemma|"
    r"matrix|eigen\w*|probability|polynomial|logarithm|modulo|prime|inequality|solve for)\b)",
    re.IGNORECASE,
)
_LONG_OUTPUT = re.compile(
    r"\b(essay|report|in[- ]depth|detailed|comprehensive|thorough|white ?paper|"
    r"long[- ]form|chapter|\d{3,} words)\b",
    re.IGNORECASE,
)
_SIGNAL_SATURATION = 3.0  # hits of a signal family that count as "fully present"


@dataclass(frozen=True, slots=True)
class Complexity:
    score: float
    features: dict[str, float]
    contributions: dict[str, float] = field(default_factory=dict)
    """``feature_weights[f] * features[f]``: what each feature added to the score."""


def request_text(request: Request) -> str:
    parts = [request.system or "", *(message.content for message in request.messages)]
    return "\n".join(part for part in parts if part)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _log_scaled(value: float, saturation: float) -> float:
    if value <= 0:
        return 0.0
    return min(1.0, math.log1p(value) / math.log1p(saturation))


def _hits(pattern: re.Pattern[str], text: str) -> float:
    return min(1.0, len(pattern.findall(text)) / _SIGNAL_SATURATION)


def _code(text: str) -> float:
    fenced = 0.6 if len(_FENCE.findall(text)) >= 2 else 0.0
    keywords = 0.15 * len(_CODE_WORDS.findall(text))
    # Prose has almost no braces or semicolons; code has several per line.
    density = len(_CODE_PUNCTUATION.findall(text)) / max(len(text), 1)
    return min(1.0, fenced + keywords + min(0.5, density * 25))


def _output(request: Request, text: str, settings: RouterSettings) -> float:
    from_max_tokens = 0.0
    if request.params.max_tokens is not None:
        from_max_tokens = _log_scaled(request.params.max_tokens, settings.output_saturation_tokens)
    from_phrases = 0.8 if _LONG_OUTPUT.search(text) else 0.0
    return max(from_max_tokens, from_phrases)


def features_of(request: Request, settings: RouterSettings) -> dict[str, float]:
    text = request_text(request)
    values = {
        "length": _log_scaled(estimate_tokens(text), settings.length_saturation_tokens),
        "task_type": settings.task_type_weight(request.task_type),
        "persona": settings.persona_weight(request.context.persona),
        "reasoning": _hits(_REASONING, text),
        "code": _code(text),
        "maths": _hits(_MATHS, text),
        "output": _output(request, text, settings),
    }
    return {name: round(min(1.0, max(0.0, value)), 4) for name, value in values.items()}


def score(request: Request, settings: RouterSettings | None = None) -> Complexity:
    """The request's complexity under ``settings`` (the documented defaults when omitted)."""
    settings = settings or RouterSettings()
    features = features_of(request, settings)
    contributions = {
        name: round(settings.feature_weights.get(name, 0.0) * value, 4)
        for name, value in features.items()
    }
    total = min(1.0, max(0.0, sum(contributions.values())))
    return Complexity(score=round(total, 4), features=features, contributions=contributions)
