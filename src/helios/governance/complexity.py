"""How hard a request looks: a 0..1 score from cheap textual features, no model involved.

Each feature lies in 0..1:

- ``intent``: the weight (``router.intent_weights``) of what the instruction asks for, read
  from cue words (:mod:`helios.governance.intents`): a proof, a design or a long-form
  analysis weighs most, a greeting, a lookup or a translation least;
- ``hard_terms``: words of hard problem domains and constraints in the instruction
  (concurrency, consensus, "exactly-once", "O(n log n)", "100,000 writes per second", ...;
  2 hits = 1);
- ``length``: prompt tokens (about chars / 4), log-scaled up to ``length_saturation_tokens``;
- ``task_type`` and ``persona``: their weights from the settings' tables;
- ``code``: fenced blocks and brace/semicolon density;
- ``maths``: arithmetic, LaTeX and maths words in the instruction (3 hits = 1);
- ``output``: the expected reply length, from ``max_tokens`` (log-scaled) or phrases such
  as "write an essay" or "a detailed report".

The score is ``min(1, sum(feature_weights[f] * feature[f]))``, and
:meth:`~helios.config.router.RouterSettings.tier_for` turns score and intent into a tier.
Cue words are read only in the instruction (a long prompt's first or last paragraph, or its
start and end: at most 650 characters), so a 50 KB prompt adds only C-speed passes over its
text (joining, counting braces). The function is pure and
deterministic: the same request and settings always give the same assessment.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field

from helios.catalog import Tier
from helios.config.router import FEATURES, RouterSettings
from helios.governance.cues import words_of
from helios.governance.intents import TABLE, instruction_of, intent_of
from helios.messages import Request

CHARS_PER_TOKEN = 4

# Scale that cue words cannot spell: "100,000 writes", "10,000 rows".
_SCALE_WORDS = frozenset(
    ("writes", "reads", "requests", "concurrent", "rows", "users", "events", "players")
)
_ARITHMETIC = re.compile(r"\d\s*[-+*/^=<>]\s*\d|\$[^$\n]+\$")
_WORD_COUNT = re.compile(r"(\d{1,2},?\d{3}|\d{3,})[- ]words?\b")
_LONG_REPLY_WORDS = 800
_HARD_SATURATION = 2.0
_MATHS_SATURATION = 3.0


@dataclass(frozen=True, slots=True)
class Complexity:
    """A request's score, the tier it picks and why."""

    score: float
    features: dict[str, float]
    contributions: dict[str, float] = field(default_factory=dict)
    """``feature_weights[f] * features[f]``: what each feature added to the score."""
    intent: str = "other"
    cue: str | None = None
    """The words that gave the intent away (``None``: no cue matched)."""
    tier: Tier = "fast"
    rule: str = ""
    """Why the score and intent picked ``tier``, in words."""


def request_text(request: Request) -> str:
    parts = [request.system or "", *(message.content for message in request.messages)]
    return "\n".join(part for part in parts if part)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _log_scaled(value: float, saturation: float) -> float:
    if value <= 0:
        return 0.0
    return min(1.0, math.log1p(value) / math.log1p(saturation))


def _code(text: str) -> float:
    # str.count runs in C: cheap over the whole prompt, unlike a regular expression.
    fenced = 0.6 if text.count("```") >= 2 else 0.0
    punctuation = text.count("{") + text.count("}") + text.count(";")
    # Prose has almost no braces or semicolons; code has several per line.
    density = punctuation / max(len(text), 1)
    return min(1.0, fenced + min(0.5, density * 25))


def _output(request: Request, long_output: bool, settings: RouterSettings) -> float:
    from_max_tokens = 0.0
    if request.params.max_tokens is not None:
        from_max_tokens = _log_scaled(request.params.max_tokens, settings.output_saturation_tokens)
    return max(from_max_tokens, 0.8 if long_output else 0.0)


def _constraints(words: list[str]) -> int:
    """Hard constraints among ``words``: latency budgets ("under 16 ms"), scale ("100,000
    writes per second"), asymptotic bounds ("O(n log n)" reads "o n")."""
    hits = 0
    for before, word in itertools.pairwise(words):
        latency = word == "ms" and before[-1].isdigit()
        scale = word in _SCALE_WORDS and "," in before and before[0].isdigit()
        hits += latency or scale or (before == "o" and word == "n")
    return hits


def _asks_many_words(instruction: str) -> bool:
    """ "a 2,000-word report", "in 1500 words": a long reply asked for by its length."""
    if "word" not in instruction:  # a substring test is far cheaper than the expression
        return False
    for match in _WORD_COUNT.finditer(instruction):
        if int(match.group(1).replace(",", "")) >= _LONG_REPLY_WORDS:
            return True
    return False


def score(request: Request, settings: RouterSettings | None = None) -> Complexity:
    """The request's complexity under ``settings`` (the documented defaults when omitted)."""
    settings = settings or RouterSettings()
    text = request_text(request)
    instruction = instruction_of(text)
    words = words_of(instruction)
    found = TABLE.find_words(words)
    if _asks_many_words(instruction):  # "a 2,000-word report" is long-form however phrased
        found["analysis"] = [*found.get("analysis", ()), "<number> words"]
        found["long_output"] = [*found.get("long_output", ()), "<number> words"]
    intent = intent_of(found, settings.intent_weight)
    long_output = "long_output" in found
    hard = len(found.get("hard", ())) + _constraints(words)
    maths = len(found.get("maths_terms", ())) + len(_ARITHMETIC.findall(instruction))
    values = {
        "intent": intent.weight,
        "hard_terms": hard / _HARD_SATURATION,
        "length": _log_scaled(estimate_tokens(text), settings.length_saturation_tokens),
        "task_type": settings.task_type_weight(request.task_type),
        "persona": settings.persona_weight(request.context.persona),
        "code": _code(text),
        "maths": maths / _MATHS_SATURATION,
        "output": _output(request, long_output, settings),
    }
    features: dict[str, float] = {
        name: round(min(1.0, max(0.0, values[name])), 4) for name in FEATURES
    }
    contributions: dict[str, float] = {
        name: round(settings.feature_weight(name) * value, 4) for name, value in features.items()
    }
    total = round(min(1.0, max(0.0, sum(contributions.values()))), 4)
    tier, rule = settings.tier_for(total, intent.name)
    return Complexity(
        score=total,
        features=features,
        contributions=contributions,
        intent=intent.name,
        cue=intent.cue,
        tier=tier,
        rule=rule,
    )
