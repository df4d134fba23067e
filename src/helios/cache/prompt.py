"""L1: provider prompt caching. It never answers a request; it makes the provider call cheaper.

:class:`PromptCachePlanner` decides, per provider, how a request's *stable prefix* (the
system prompt and every turn before the last user message, which changes on each call)
can be cached:

- **Anthropic** caches only up to explicit ``cache_control`` breakpoints, at most 4 per
  request, and silently skips any breakpoint whose prefix is shorter than the model's
  ``prompt_cache_min_tokens``. The planner therefore places a breakpoint only where the
  prefix up to it reaches that minimum, never on the last user message, and keeps the
  caller's own breakpoints (they count toward the 4). Anthropic requires 1-hour entries
  to come before 5-minute ones; with one configured ``ttl`` that holds by itself, and next
  to a caller's breakpoints of the other TTL a new breakpoint takes the TTL the rule
  forces (or is not placed when no TTL could satisfy it).
- **OpenAI** caches prefixes of at least 1024 tokens automatically. The request is left as
  it is except for ``metadata["prompt_cache_key"]`` (the prefix hash, unless the caller
  set one), which routes calls sharing a prefix to the same cache; the OpenAI adapter
  sends it as ``prompt_cache_key``.
- **Gemini** caches implicitly: the plan only reports the prefix.
- Anything else (llama.cpp, custom providers) has no provider prompt cache.

Tokens are estimated with ``count_tokens`` per text block (``ceil(chars / 4)`` by default,
the simulator's rule); a real tokenizer may count differently near the minimum.

:class:`WarmPrefixes` remembers which prefix hashes the provider holds warm, and
:func:`savings` / :func:`expected_savings` turn usage and plans into dollars at catalogue
prices.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass

from helios.cache.backends.base import CacheBackend
from helios.catalog import Catalog, ModelEntry
from helios.messages import CacheControl, CacheTTL, Message, Request, Usage

MAX_BREAKPOINTS = 4
"""Anthropic accepts at most this many ``cache_control`` blocks per request."""
OPENAI_MIN_TOKENS = 1024
TTL_SECONDS: dict[CacheTTL, float] = {"5m": 300.0, "1h": 3600.0}
KEY_PREFIX = "l1:"
_PER_TOKEN = 1e-6  # catalogue prices are per million tokens

TokenCounter = Callable[[str], int]


def default_count_tokens(text: str) -> int:
    """``ceil(len(text) / 4)``: the approximation the simulator bills by."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """A request ready for the provider, with what the planner did to it and why.

    ``breakpoints`` counts every ``cache_control`` breakpoint the request now carries (the
    caller's included); ``prefix_tokens`` is how many prompt tokens the provider can serve
    from its cache once the prefix is warm (0 when nothing is cacheable); ``prefix_hash``
    identifies the stable prefix for this provider and model (``None`` without one).
    """

    request: Request
    breakpoints: int
    prefix_tokens: int
    prefix_hash: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class _Block:
    """One block of the stable prefix: the system prompt (index -1) or a message."""

    index: int
    cumulative_tokens: int
    cache: CacheControl | None


class PromptCachePlanner:
    def __init__(
        self,
        catalog: Catalog,
        *,
        ttl: CacheTTL = "5m",
        count_tokens: TokenCounter = default_count_tokens,
    ) -> None:
        self.catalog = catalog
        self.ttl: CacheTTL = ttl
        self.count_tokens = count_tokens

    def plan(self, request: Request, provider_kind: str, model: str) -> PlannedRequest:
        if provider_kind not in ("anthropic", "openai", "gemini"):
            return PlannedRequest(
                request, _breakpoints(request), 0, None, "no provider prompt cache"
            )
        stable = _stable_turns(request)
        if request.system is None and not stable:
            return PlannedRequest(request, _breakpoints(request), 0, None, "no stable prefix")
        prefix_hash = _prefix_hash(request, provider_kind, model)
        tokens = self._prefix_tokens(request)
        entry = self.catalog.lookup(provider_kind, model) or self.catalog.find(model)
        minimum = entry.prompt_cache_min_tokens if entry is not None else None
        if provider_kind == "anthropic":
            return self._plan_anthropic(request, model, prefix_hash, minimum)
        if provider_kind == "openai":
            if tokens < OPENAI_MIN_TOKENS:
                reason = f"prefix of {tokens} tokens is below OpenAI's {OPENAI_MIN_TOKENS}"
                return PlannedRequest(request, 0, 0, prefix_hash, reason)
            # A caller's key wins: the dialectic pipeline keys a whole run with one, so that
            # calls whose stable prefixes differ (a repair turn) still meet the same cache.
            metadata = {"prompt_cache_key": prefix_hash, **request.metadata}
            keyed = request.model_copy(update={"metadata": metadata})
            return PlannedRequest(keyed, 0, tokens, prefix_hash, "automatic caching, keyed")
        gemini_minimum = minimum or OPENAI_MIN_TOKENS
        if tokens < gemini_minimum:
            reason = f"prefix of {tokens} tokens is below the model's {gemini_minimum}"
            return PlannedRequest(request, 0, 0, prefix_hash, reason)
        return PlannedRequest(request, 0, tokens, prefix_hash, "implicit caching")

    def _plan_anthropic(
        self, request: Request, model: str, prefix_hash: str, minimum: int | None
    ) -> PlannedRequest:
        existing = _breakpoints(request)
        blocks = self._blocks(request)
        if minimum is None:
            reason = f"model {model} has no known prompt-cache minimum"
            return PlannedRequest(request, existing, 0, prefix_hash, reason)
        eligible = [b for b in blocks if b.cumulative_tokens >= minimum]
        if not eligible:
            stable = blocks[-1].cumulative_tokens if blocks else 0
            reason = (
                f"prefix of {stable} tokens is below the model's minimum of {minimum}:"
                " the provider would not cache it"
            )
            return PlannedRequest(request, existing, 0, prefix_hash, reason)
        budget = MAX_BREAKPOINTS - existing
        chosen: dict[int, CacheTTL] = {}
        # The system prompt is the most widely shared prefix; then the latest turns, which
        # cover the most tokens and let the next call read what this one writes.
        free = [b for b in eligible if b.cache is None]
        ordered = [b for b in free if b.index == -1] + [b for b in reversed(free) if b.index >= 0]
        for block in ordered:
            if len(chosen) >= budget:
                break
            ttl = self._ttl_at(block.index, blocks)
            if ttl is not None:
                chosen[block.index] = ttl
        planned = _with_breakpoints(request, chosen)
        cached = [b.cumulative_tokens for b in eligible if b.cache is not None or b.index in chosen]
        prefix_tokens = max(cached, default=0)
        if chosen:
            reason = f"{len(chosen)} breakpoint(s) placed (minimum {minimum} tokens)"
        elif cached:
            reason = "caller's breakpoints kept; none added"
        else:
            reason = f"no room for a breakpoint: {existing} already set"
        return PlannedRequest(planned, existing + len(chosen), prefix_tokens, prefix_hash, reason)

    def _ttl_at(self, index: int, blocks: list[_Block]) -> CacheTTL | None:
        """The TTL a new breakpoint at ``index`` may carry: 1h entries must precede 5m ones."""
        before = {b.cache.ttl for b in blocks if b.cache is not None and b.index < index}
        after = {b.cache.ttl for b in blocks if b.cache is not None and b.index > index}
        if "1h" in after and "5m" in before:
            return None
        if "1h" in after:
            return "1h"
        if "5m" in before:
            return "5m"
        return self.ttl

    def _blocks(self, request: Request) -> list[_Block]:
        blocks: list[_Block] = []
        total = 0
        if request.system is not None:
            total += self.count_tokens(request.system)
            blocks.append(_Block(-1, total, request.system_cache))
        for i, message in enumerate(_stable_turns(request)):
            total += self.count_tokens(message.content)
            blocks.append(_Block(i, total, message.cache))
        return blocks

    def _prefix_tokens(self, request: Request) -> int:
        system = self.count_tokens(request.system) if request.system is not None else 0
        return system + sum(self.count_tokens(m.content) for m in _stable_turns(request))


def _stable_turns(request: Request) -> tuple[Message, ...]:
    return request.messages[:-1]


def _breakpoints(request: Request) -> int:
    return (request.system_cache is not None) + sum(m.cache is not None for m in request.messages)


def _with_breakpoints(request: Request, chosen: dict[int, CacheTTL]) -> Request:
    if not chosen:
        return request
    update: dict[str, object] = {}
    if -1 in chosen:
        update["system_cache"] = CacheControl(ttl=chosen[-1])
    if any(i >= 0 for i in chosen):
        update["messages"] = tuple(
            m.model_copy(update={"cache": CacheControl(ttl=chosen[i])}) if i in chosen else m
            for i, m in enumerate(request.messages)
        )
    return request.model_copy(update=update)


def _prefix_hash(request: Request, provider_kind: str, model: str) -> str:
    """SHA-256 of the canonical stable prefix; provider and model are part of it because a
    provider's prompt cache is per model."""
    canonical = {
        "provider": provider_kind,
        "model": model,
        "system": request.system,
        "turns": [[m.role, m.content] for m in _stable_turns(request)],
    }
    text = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class WarmPrefixes:
    """Which prefixes the provider holds warm, under ``l1:<prefix_hash>`` in a backend.

    An entry lives as long as the provider's entry would (300 s for 5m, 3600 s for 1h) and
    is refreshed whenever it is found warm, as Anthropic refreshes the TTL on each hit.
    """

    def __init__(self, backend: CacheBackend) -> None:
        self.backend = backend

    async def mark(self, prefix_hash: str, ttl_s: float) -> None:
        await self.backend.set(KEY_PREFIX + prefix_hash, repr(ttl_s).encode(), ttl_s=ttl_s)

    async def record(self, planned: PlannedRequest, usage: Usage, ttl: CacheTTL = "5m") -> bool:
        """Mark the plan's prefix warm when ``usage`` shows cache reads or writes."""
        if planned.prefix_hash is None or not (usage.cache_read_tokens or usage.cache_write_tokens):
            return False
        await self.mark(planned.prefix_hash, TTL_SECONDS[ttl])
        return True

    async def is_warm(self, prefix_hash: str) -> bool:
        key = KEY_PREFIX + prefix_hash
        value = await self.backend.get(key)
        if value is None:
            return False
        await self.backend.set(key, value, ttl_s=float(value.decode()))
        return True


@dataclass(frozen=True, slots=True)
class L1Savings:
    """What prompt caching changed on one call, in dollars (negative net: it cost more)."""

    read_tokens: int
    write_tokens: int
    saved_usd: float
    extra_write_usd: float
    net_usd: float


def savings(usage: Usage, entry: ModelEntry) -> L1Savings:
    """Reads priced at the read price instead of input; writes at their premium over input."""
    p = entry.prices
    saved = _PER_TOKEN * usage.cache_read_tokens * (p.input - p.cache_read)
    extra = _PER_TOKEN * (
        usage.cache_write_5m_tokens * (p.cache_write_5m - p.input)
        + usage.cache_write_1h_tokens * (p.cache_write_1h - p.input)
    )
    return L1Savings(
        read_tokens=usage.cache_read_tokens,
        write_tokens=usage.cache_write_tokens,
        saved_usd=saved,
        extra_write_usd=extra,
        net_usd=saved - extra,
    )


def expected_savings(planned: PlannedRequest, entry: ModelEntry, warm: bool) -> float:
    """Before the call: a warm prefix will be read instead of billed as input, else 0."""
    if not warm:
        return 0.0
    p = entry.prices
    return _PER_TOKEN * planned.prefix_tokens * (p.input - p.cache_read)
