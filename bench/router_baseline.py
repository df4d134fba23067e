"""Today's router, frozen: the complexity score and thresholds before calibration.

A verbatim copy of ``helios.governance.complexity`` and the ``router`` defaults as they were
before the calibration of the labelled prompt set (commit 9d5ada5), so that
``router_calibration.py`` measures the baseline and the calibrated policy side by side in
one run, through the same ``EconomicRouter.decide()``. Bench code only: nothing in Helios
imports it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from helios.catalog import Tier
from helios.governance.complexity import Complexity, request_text
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


STRONG_ABOVE = 0.65
FAST_ABOVE = 0.3
PERSONA_WEIGHTS = {"thesis": 0.2, "antithesis": 0.55, "synthesis": 0.9, "judge": 0.85}
PERSONA_DEFAULT = 0.3
TASK_TYPE_WEIGHTS = {
    "chat": 0.1, "factual": 0.1, "classification": 0.1, "extraction": 0.2,
    "summarisation": 0.3, "summarization": 0.3, "general": 0.3, "creative": 0.4,
    "planning": 0.6, "code": 0.75, "coding": 0.75, "analysis": 0.75, "math": 0.8,
    "maths": 0.8, "reasoning": 0.9,
}  # fmt: skip
TASK_TYPE_DEFAULT = 0.3
FEATURE_WEIGHTS = {
    "length": 0.15, "task_type": 0.25, "persona": 0.15, "reasoning": 0.25, "code": 0.3,
    "maths": 0.3, "output": 0.15,
}  # fmt: skip
LENGTH_SATURATION_TOKENS = 8000
OUTPUT_SATURATION_TOKENS = 4000


def _output(request: Request, text: str) -> float:
    from_max_tokens = 0.0
    if request.params.max_tokens is not None:
        from_max_tokens = _log_scaled(request.params.max_tokens, OUTPUT_SATURATION_TOKENS)
    from_phrases = 0.8 if _LONG_OUTPUT.search(text) else 0.0
    return max(from_max_tokens, from_phrases)


def _tier(total: float) -> Tier:
    if total > STRONG_ABOVE:
        return "strong"
    if total > FAST_ABOVE:
        return "fast"
    return "local"


def baseline_score(request: Request, settings: Any = None) -> Complexity:
    """Today's score and tier for ``request`` (``settings`` is ignored: the defaults of
    then are built in)."""
    text = request_text(request)
    persona = request.context.persona
    values = {
        "length": _log_scaled(math.ceil(len(text) / CHARS_PER_TOKEN), LENGTH_SATURATION_TOKENS),
        "task_type": TASK_TYPE_WEIGHTS.get(request.task_type, TASK_TYPE_DEFAULT),
        "persona": PERSONA_WEIGHTS.get(persona, PERSONA_DEFAULT) if persona else PERSONA_DEFAULT,
        "reasoning": _hits(_REASONING, text),
        "code": _code(text),
        "maths": _hits(_MATHS, text),
        "output": _output(request, text),
    }
    features = {name: round(min(1.0, max(0.0, value)), 4) for name, value in values.items()}
    contributions = {name: round(FEATURE_WEIGHTS[name] * v, 4) for name, v in features.items()}
    total = round(min(1.0, max(0.0, sum(contributions.values()))), 4)
    return Complexity(total, features, contributions, tier=_tier(total), rule="baseline")
