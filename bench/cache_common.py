"""What the parts of bench/cache.py share: the timing of arms and the data they look up.

**Timing.** Each arm is a call taking the sample's index (sync or async; told apart once, so that a
sync call is timed without an await around it). Arms are warmed up, then measured in
``rounds`` blocks with the order rotating each round, so that drift on a shared 2-core
machine (another process waking up, the CPU clocking down) spreads over every arm instead
of landing on whichever ran last. Times are ``time.perf_counter_ns`` around the call only.

**Data.** One reply of about 2 KB serialized (a streamed answer kept chunk by chunk) is
cached under every key; L2 looks up fixed support questions, L3 the labelled question
pairs of the ``fow-cache`` package: the first question of each even-numbered pair is
stored, the second one is looked up (paraphrases and near repeats that should hit, traps
that the verifier should turn down), and the second questions of the odd-numbered pairs,
whose partners are not stored, serve as misses.
"""

from __future__ import annotations

import gc
import inspect
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from helios.percentiles import percentile


@dataclass
class Arm:
    """``call(i)`` is timed for i = 0, 1, ...; ``warm(i)`` (default ``call``) warms up.

    ``outcome`` names a result ("hit", "miss"); ``split_ns`` reads, after a call, the
    nanoseconds of it that went to one inner part (the embedding), for paired splits.
    """

    name: str
    call: Callable[[int], Any]
    warm: Callable[[int], Any] | None = None
    outcome: Callable[[Any], str] | None = None
    split_ns: Callable[[], int] | None = None


@dataclass
class Series:
    ns: list[int] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    split_ns: list[int] = field(default_factory=list)


async def _invoke(call: Callable[[int], Any], is_async: bool, i: int) -> tuple[int, Any]:
    if is_async:
        started = time.perf_counter_ns()
        result = await call(i)
        return time.perf_counter_ns() - started, result
    started = time.perf_counter_ns()
    result = call(i)
    return time.perf_counter_ns() - started, result


async def measure(arms: Sequence[Arm], n: int, warmup: int, rounds: int = 5) -> dict[str, Series]:
    """``n`` timed calls per arm after ``warmup`` untimed ones, in rotating rounds."""
    kinds = {arm.name: inspect.iscoroutinefunction(arm.call) for arm in arms}
    for arm in arms:
        warm = arm.warm or arm.call
        warm_async = inspect.iscoroutinefunction(warm)
        for i in range(warmup):
            await _invoke(warm, warm_async, i)
    series = {arm.name: Series() for arm in arms}
    done = dict.fromkeys(kinds, 0)
    rounds = max(1, min(rounds, n))
    for round_index in range(rounds):
        shift = round_index % len(arms)
        quota = n * (round_index + 1) // rounds
        gc.collect()  # a collection owed by set-up should not land inside one arm's block
        for arm in [*arms[shift:], *arms[:shift]]:
            out = series[arm.name]
            while done[arm.name] < quota:
                elapsed, result = await _invoke(arm.call, kinds[arm.name], done[arm.name])
                out.ns.append(elapsed)
                if arm.outcome is not None:
                    out.outcomes.append(arm.outcome(result))
                if arm.split_ns is not None:
                    out.split_ns.append(arm.split_ns())
                done[arm.name] += 1
    return series


def summary(ns: Sequence[int]) -> dict[str, Any]:
    if not ns:
        return {"n": 0}
    ms = [value / 1e6 for value in ns]
    return {
        "n": len(ms),
        "p50_ms": statistics.median(ms),
        "p99_ms": percentile(ms, 0.99),
        "mean_ms": statistics.fmean(ms),
        "min_ms": min(ms),
    }


def describe(series: Series, *, only: str | None = None) -> dict[str, Any]:
    """Summary of a series (of the samples whose outcome is ``only``, if given), with its
    outcomes counted and, where recorded, the split: the inner part and the rest, each
    summarised over the same calls (paired)."""
    rows = range(len(series.ns))
    if only is not None:
        rows = [i for i in rows if series.outcomes[i] == only]  # type: ignore[assignment]
    result = summary([series.ns[i] for i in rows])
    if series.outcomes:
        counts: dict[str, int] = {}
        for outcome in series.outcomes:
            counts[outcome] = counts.get(outcome, 0) + 1
        result["outcomes"] = counts
    if series.split_ns:
        result["inner"] = summary([series.split_ns[i] for i in rows])
        result["rest"] = summary([series.ns[i] - series.split_ns[i] for i in rows])
    return result


# -- data ----------------------------------------------------------------------------------
SYSTEM = "You are a concise support assistant for a cloud hosting platform."
MODEL_SPEC = "sonnet"
TASK_TYPE = "support"
PACKAGED_WATERFALL = "CacheManager.lookup (L2 miss -> L3), packaged graph"
"""The int8 build's baseline arm in the same run (bench/cache_l3.py's packaged_graph)."""
THRESHOLD = 0.8
"""L3's cosine threshold in every measurement; GPTCache's 0.9 makes the same decisions
(bench/cache_peers.py)."""
VALUE_BYTES = 2048
_SENTENCE = (
    "Rotate the key from the console, update the secret in every service that reads it, "
    "then revoke the old key once the new one shows traffic. "
)


def reply_text() -> str:
    """The answer text whose :class:`CachedReply`, chunked as a stream, is ~2 KB."""
    text = _SENTENCE
    while len(cached_reply(text).to_bytes()) < VALUE_BYTES:
        text += _SENTENCE[: max(1, (VALUE_BYTES - len(cached_reply(text).to_bytes())) // 2)]
    return text


def cached_reply(text: str) -> Any:
    from helios.cache.exact import CachedReply
    from helios.messages import Usage

    chunks = tuple(text[i : i + 24] for i in range(0, len(text), 24))  # streamed deltas
    return CachedReply(
        text=text,
        chunks=chunks,
        usage=Usage(input_tokens=40, output_tokens=len(text) // 4),
        model="claude-sonnet-5-5",
        provider="anthropic",
        created_at=1_790_000_000.0,
    )


def l2_questions(count: int) -> list[str]:
    services = ("billing", "search", "auth", "storage", "mailer", "ledger", "queue", "cdn")
    return [
        f"How do I rotate the API keys of the {services[i % len(services)]} service in project {i}?"
        for i in range(count)
    ]


@dataclass(frozen=True)
class SemanticTexts:
    stored: list[str]
    """First questions of the even-numbered pairs, each once: what L3 holds."""
    lookups: list[str]
    """Second questions of the same pairs: should-hit pairs and traps."""
    misses: list[str]
    """Second questions of the odd-numbered pairs, whose partners are not stored."""
    categories: list[str]
    """fow-cache's category of each lookup (paraphrase, near_repeat, negation, ...)."""


def semantic_texts() -> SemanticTexts:
    """fow-cache's 600 labelled pairs (installed with the bench venv and with ``[dev]``)."""
    try:
        import fow_cache
    except ImportError:
        raise SystemExit("bench/cache.py needs fow-cache: run `make bench-cache`") from None
    pairs = fow_cache.load_questions()
    even, odd = pairs[0::2], pairs[1::2]
    return SemanticTexts(
        stored=list(dict.fromkeys(pair["a"] for pair in even)),  # 284 distinct
        lookups=[pair["b"] for pair in even],
        misses=[pair["b"] for pair in odd],
        categories=[pair["category"] for pair in even],
    )
