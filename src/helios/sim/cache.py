"""The warm-prefix model behind simulated prompt caching.

Two models, both keyed by (protocol, model, hash of the prefix's roles and texts):

- **Explicit breakpoints** (Anthropic). Each block carrying ``cache_control`` ends a
  cacheable prefix (tools, then system, then messages). Breakpoint prefixes shorter than
  the model's minimum are never cached, silently. The longest prefix still warm is read
  (``cache_read``) and its TTL refreshed; the prefixes after it, up to the last breakpoint,
  are written (``cache_write_5m`` / ``cache_write_1h``, each span billed at the TTL of the
  breakpoint that ends it). Everything after the last breakpoint is plain input. With one
  breakpoint this is: seen within its TTL → read, else → written.
- **Automatic prefixes** (OpenAI, Gemini implicit caching). A prompt of at least the
  minimum is remembered at every boundary ``minimum + 128·k`` tokens; a later prompt reads
  the longest boundary prefix it shares with a warm one. Entries stay warm for a fixed TTL
  after their last use.

Tokens are counted with :func:`helios.sim.text.count_tokens`; a boundary inside a text
block falls after ``4 · tokens`` characters of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from helios.messages import CacheTTL
from helios.sim.text import Segment, prompt_tokens

BREAKPOINT_TTL_S: dict[CacheTTL, float] = {"5m": 300.0, "1h": 3600.0}
AUTOMATIC_STEP_TOKENS = 128
_PRUNE_ABOVE = 50_000  # entries; expired ones are only swept once the store is this big


@dataclass(frozen=True)
class PromptUsage:
    """How a prompt's tokens were billed. ``input_tokens`` excludes cache reads and writes."""

    input_tokens: int
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


@dataclass(frozen=True)
class _Breakpoint:
    tokens: int
    digest: bytes
    ttl: CacheTTL


_Key = tuple[str, str, bytes]


class WarmPrefixes:
    """Prefix hashes with their expiry times. Not thread-safe: the owner locks around it."""

    def __init__(self) -> None:
        self._expiry: dict[_Key, float] = {}

    def __len__(self) -> int:
        return len(self._expiry)

    def clear(self) -> None:
        self._expiry.clear()

    def explicit(
        self, protocol: str, model: str, segments: Sequence[Segment], *, min_tokens: int, now: float
    ) -> PromptUsage:
        """Anthropic-style usage for a prompt with ``cache_control`` breakpoints."""
        total = prompt_tokens(segments)
        eligible = [bp for bp in _breakpoints(segments) if bp.tokens >= min_tokens]
        if not eligible:
            return PromptUsage(input_tokens=total)
        self._prune(now)
        hit = next(
            (
                i
                for i in reversed(range(len(eligible)))
                if self._warm(protocol, model, eligible[i], now)
            ),
            None,
        )
        read = 0
        if hit is not None:
            bp = eligible[hit]
            read = bp.tokens
            self._keep(protocol, model, bp.digest, now + BREAKPOINT_TTL_S[bp.ttl])
        writes: dict[CacheTTL, int] = {"5m": 0, "1h": 0}
        covered = read
        for bp in eligible[0 if hit is None else hit + 1 :]:
            writes[bp.ttl] += bp.tokens - covered
            covered = bp.tokens
            self._keep(protocol, model, bp.digest, now + BREAKPOINT_TTL_S[bp.ttl])
        return PromptUsage(
            input_tokens=total - covered,
            cache_read_tokens=read,
            cache_write_5m_tokens=writes["5m"],
            cache_write_1h_tokens=writes["1h"],
        )

    def automatic(
        self,
        protocol: str,
        model: str,
        segments: Sequence[Segment],
        *,
        min_tokens: int,
        now: float,
        ttl_s: float,
    ) -> PromptUsage:
        """OpenAI/Gemini-style usage: the longest warm shared prefix, in 128-token steps."""
        total = prompt_tokens(segments)
        if total < min_tokens:
            return PromptUsage(input_tokens=total)
        self._prune(now)
        targets = range(min_tokens, total + 1, AUTOMATIC_STEP_TOKENS)
        boundaries = list(_boundaries(segments, targets))
        cached = next(
            (
                tokens
                for tokens, digest in reversed(boundaries)
                if self._expiry.get((protocol, model, digest), float("-inf")) > now
            ),
            0,
        )
        for _, digest in boundaries:
            self._keep(protocol, model, digest, now + ttl_s)
        return PromptUsage(input_tokens=total - cached, cache_read_tokens=cached)

    def _warm(self, protocol: str, model: str, bp: _Breakpoint, now: float) -> bool:
        return self._expiry.get((protocol, model, bp.digest), float("-inf")) > now

    def _keep(self, protocol: str, model: str, digest: bytes, until: float) -> None:
        key = (protocol, model, digest)
        self._expiry[key] = max(until, self._expiry.get(key, until))

    def _prune(self, now: float) -> None:
        if len(self._expiry) > _PRUNE_ABOVE:
            self._expiry = {key: t for key, t in self._expiry.items() if t > now}


def _segment_header(segment: Segment) -> bytes:
    return b"\x00" + segment.role.encode() + b"\x00"


def _breakpoints(segments: Sequence[Segment]) -> Iterator[_Breakpoint]:
    digest = hashlib.blake2b()
    tokens = 0
    for segment in segments:
        digest.update(_segment_header(segment) + segment.text.encode())
        tokens += segment.tokens
        if segment.cache_ttl is not None:
            yield _Breakpoint(tokens, digest.copy().digest(), segment.cache_ttl)


def _boundaries(segments: Sequence[Segment], targets: range) -> Iterator[tuple[int, bytes]]:
    """(tokens, hash of the prompt's first ``tokens`` tokens) for each target, in order."""
    digest = hashlib.blake2b()
    pending = iter(targets)
    target = next(pending, None)
    start = 0  # tokens before the current segment
    for segment in segments:
        digest.update(_segment_header(segment))
        used = 0  # characters of this segment already hashed
        end = start + segment.tokens
        while target is not None and target <= end:
            cut = min(len(segment.text), 4 * (target - start))
            digest.update(segment.text[used:cut].encode())
            used = cut
            yield target, digest.copy().digest()
            target = next(pending, None)
        digest.update(segment.text[used:].encode())
        start = end
