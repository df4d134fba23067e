"""What a prompt asks for, and the signals of a hard task: the router's cue words.

An intent is one of :data:`helios.config.router.INTENTS`. Each has its cues (phrases, stems
ending in ``*``, phrases that count only at the start with ``^``; see
:mod:`helios.governance.cues`); the intent of a prompt is the matching intent with the
highest weight in ``router.intent_weights``, so "implement ... and prove it" reads as a
proof, not as code. A prompt that matches no cue has the intent ``other``. Besides the
intents, the group ``hard`` holds words of hard problem domains and constraints,
``maths_terms`` maths vocabulary and ``long_output`` asks for a long reply.

Only the instruction is read. An instruction sits before or after the material it is about
(a document to summarise, code to fix), and reading a 50 KB attachment would cost time on
every call while telling little about how hard the task is; worse, the material's own words
("we will evaluate a proxy") would read as the task. So a long prompt (over
:data:`HEAD_CHARS` + :data:`TAIL_CHARS` characters) with blank lines is read as paragraphs:
the shorter of its first and last paragraph is the instruction (clipped to
:data:`HEAD_CHARS`). A long prompt without a blank line is read at both ends: its first
:data:`HEAD_CHARS` and last :data:`TAIL_CHARS` characters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from helios.governance.cues import CueTable

HEAD_CHARS = 400
TAIL_CHARS = 250
OTHER = "other"
SIGNALS = ("hard", "maths_terms", "long_output")

_INTENT_CUES: dict[str, tuple[str, ...]] = {
    "proof": (
        "prove", "proof", "proofs", "provably", "show that", "derive", "derivation",
        "by induction", "demonstrate rigorously", "demonstrate formally", "demonstrate that",
        "formally", "bivalence", "if and only",
    ),
    "design": (
        "design a", "design an", "design the", "designing a", "design and implement",
        "design it", "architect*", "system design", "propose a protocol",
        "propose an architecture", "propose a design", "propose a scheme",
        "sharding scheme", "indexing strategy", "invalidation strategy",
        "deployment pipeline", "data model",
    ),
    "analysis": (
        "essay", "white paper", "whitepaper", "in-depth", "in depth", "thorough",
        "thoroughly", "comprehensive", "critical", "critically", "critique", "long-form",
        "long form", "case studies", "analyse", "analyze", "implications", "pros and cons",
        "compare and contrast", "discuss", "historiograph*", "literature review",
        "detailed analysis", "detailed comparison", "detailed report", "market analysis",
        "write a report", "a detailed", "report to", "report comparing",
    ),
    "reasoning": (
        "why might", "why would", "why did", "why can", "why could", "explain why",
        "explain how", "your reasoning", "explain the strategy", "explain the derivation",
        "explain the method", "reason", "reasoning", "step by step", "step-by-step",
        "walk through", "walk me through", "think through", "hypothes*", "trade-off",
        "trade-offs", "tradeoffs", "weigh", "justify", "diagnos*", "would you estimate",
        "would you decide", "would you approach", "argue", "arguing", "conclude",
        "figure out", "contradiction", "contradictions", "deduction", "strategy",
        "rank them", "failure modes", "root cause", "root-cause", "evaluate", "assess",
        "expected number", "probability that", "probability it", "recurrence",
        "work it out", "plausible causes", "possible causes", "likely causes",
        "plan a migration", "plan the migration", "can that be", "discriminate",
    ),
    "code": (
        "function", "script", "sql", "regex", "query", "bash", "python", "javascript",
        "typescript", "java", "in go", "css", "git", "dockerfile", "cron", "pip", "error",
        "debug", "refactor", "implement", "unit test", "unit tests", "snippet", "compile*",
        "stack trace", "stacktrace", "traceback",
    ),
    "maths": (
        "solve", "calculate", "compute", "simplify", "expand", "derivative", "integral",
        "square root", "average of", "probability of", "prime", "round", "percent",
    ),
    "summarisation": (
        "summar*", "tl", "recap", "condense", "boil", "key points", "key takeaways",
        "sum up", "digest", "shorten", "overview", "minutes of", "abstract of",
    ),
    "extraction": (
        "extract", "pull out", "pull the", "pull all", "list every", "list all",
        "list each", "find the", "parse", "get the", "return the", "quote", "make a list",
    ),
    "translation": (
        "translat*", "tradu*", "übersetz*", "how do you say", "how would i say", "render",
        "english to", "in english", "in french", "in german", "in spanish", "in japanese",
        "in korean", "in greek", "in thai", "in dutch", "in swedish", "in polish",
        "in portuguese", "in italian",
    ),
    "classification": (
        "classify", "categor*", "label", "tag", "sentiment", "positive or negative",
        "positive negative", "spam", "which category", "which of these", "sort these",
        "detect the intent", "rate the", "is this", "is it", "is the following",
        "does this", "what language",
    ),
    "rewrite": (
        "rewrite", "rephrase", "paraphrase", "proofread", "fix the grammar", "correct the",
        "reword", "make this", "make it", "convert this", "convert to", "turn this",
        "turn these", "reformat", "expand this", "change this", "put this",
    ),
    "creative": (
        "haiku", "poem", "limerick", "slogan", "name ideas", "title for", "tweet", "story",
        "brainstorm", "note to", "message for", "toast", "description for", "icebreaker",
        "out-of-office",
    ),
    "lookup": (
        "^what", "^who", "^when", "^where", "^which", "^how many", "^how much", "^how tall",
        "^how long", "^how old", "^how far", "^how do", "define", "what does",
        "quick question", "in one sentence", "what is", "what's", "tell me the",
    ),
    "chat": (
        "^hi", "^hello", "^hey", "^yo", "^good morning", "^good evening", "^good afternoon",
        "^thanks", "^thank you", "^merci", "how are you", "recommend", "suggest", "joke",
        "fun fact", "tip", "tips", "who are you", "please remind", "say that again",
    ),
}  # fmt: skip
_SIGNAL_CUES: dict[str, tuple[str, ...]] = {
    "hard": (
        "lock-free", "lineari*", "concurren*", "deadlock*", "race condition", "data race",
        "data races", "memory model", "atomic*", "distributed", "consensus", "byzantine",
        "paxos", "raft", "partition", "partitions", "exactly-once", "crash*", "recovery",
        "fault-toleran*", "fault toleran*", "replica*", "shard*", "split brain",
        "zero-downtime", "without downtime", "per second", "complexity",
        "garbage collector", "compiler", "query planner", "invariant*", "rigorous*",
        "undecidab*", "np", "irrational", "uncountable", "eigen*", "inequality",
        "converge*", "multi-tenant", "across data centres", "across regions",
        "no race", "write barrier", "idempoten*", "conflict resolution", "gdpr",
        "differential privacy", "fundamental group", "topolog*", "manifold*",
    ),
    "maths_terms": (
        "integral", "equation", "derivative", "theorem", "lemma", "matrix", "probability",
        "polynomial", "logarithm", "modulo", "prime", "inequality", "frac", "sqrt",
    ),
    "long_output": (
        "essay", "report", "in-depth", "in depth", "detailed", "comprehensive", "thorough",
        "white paper", "whitepaper", "long-form", "chapter",
    ),
}  # fmt: skip
TABLE = CueTable.of({**_INTENT_CUES, **_SIGNAL_CUES})
CUED_INTENTS: tuple[str, ...] = tuple(_INTENT_CUES)


@dataclass(frozen=True, slots=True)
class Intent:
    name: str
    cue: str | None
    """The words that matched, for explanations; ``None`` for ``other``."""
    weight: float


def instruction_of(text: str) -> str:
    """The part of ``text`` an instruction sits in (see the module's docstring)."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    first_end = text.find("\n\n")
    if first_end < 0:
        return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]
    first = text[:first_end]
    last = text[text.rfind("\n\n") + 2 :]
    return (first if len(first) <= len(last) else last)[:HEAD_CHARS]


def intent_of(found: Mapping[str, list[str]], weight: Callable[[str], float]) -> Intent:
    """The intent with the highest ``weight`` among those whose cues were ``found`` (ties
    go to the intent listed first)."""
    best = Intent(OTHER, None, weight(OTHER))
    for name in CUED_INTENTS:
        cues = found.get(name)
        if cues and (best.cue is None or weight(name) > best.weight):
            best = Intent(name, cues[0], weight(name))
    return best
