"""L2, the exact-match response cache: the same request to the same model gets the same reply.

Where it sits: L1 is the provider's own prompt cache (cheaper input tokens on a shared
prefix); L2 answers a repeated request without calling a provider at all; L3 (semantic)
answers a request that *means* the same. The engine asks L2 first, because a hash lookup
costs microseconds and, when it hits, is never wrong.

What it stores is a :class:`CachedReply`: the text, the exact chunk boundaries of the
original stream (so a cached stream replays chunk by chunk, as the caller first saw it),
the usage and which model answered. Keys come from :mod:`helios.cache.keys`; bytes go to
any :class:`~helios.cache.backends.base.CacheBackend`.

The cache fails open: a backend that is down or a value that no longer decodes is a miss
(counted as an error), never a failed call. Only :meth:`ExactCache.invalidate` raises,
because an operator who asked for a purge must learn that it did not happen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from helios.breaker import failure_log_level
from helios.cache.backends.base import CacheBackend, EntryInfo, check_limit, most_recent_first
from helios.cache.keys import namespace_of, prefix_for, request_key
from helios.errors import CacheBackendError
from helios.messages import Chunk, Completion, FinishReason, Request, ToolCallDelta, Usage
from helios.providers.base import StreamAssembler

logger = logging.getLogger(__name__)

NO_PERSONA = "-"
UNCACHEABLE_FINISH: frozenset[FinishReason] = frozenset({"error", "cancelled"})
"""Replies that ended this way are incomplete by accident; replaying them would repeat it."""


class PlacedToolDelta(BaseModel):
    """A tool-call delta of the original stream and how many text chunks came before it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    after: int = Field(ge=0)
    delta: ToolCallDelta


class CachedReply(BaseModel):
    """A finished reply as the cache keeps it; ``"".join(chunks) == text`` always, and the
    tool-call deltas keep their place among the text chunks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    chunks: tuple[str, ...]
    usage: Usage
    model: str
    provider: str
    finish_reason: FinishReason = "stop"
    created_at: float
    """Seconds since the epoch when the original reply was produced."""
    duration_s: float | None = None
    """How long the original call took: the wait a hit spares (``None`` when unknown, as
    for replies stored through the API or a warm file)."""
    tool_deltas: tuple[PlacedToolDelta, ...] = ()
    json_object: bool = False
    """Stored through the cache API as a JSON object (``text`` is its JSON): the API hands
    it back as the same object."""

    @model_validator(mode="after")
    def _chunks_spell_the_text(self) -> CachedReply:
        if "".join(self.chunks) != self.text:
            raise ValueError("the chunks do not join back into the text")
        if any(placed.after > len(self.chunks) for placed in self.tool_deltas):
            raise ValueError("a tool-call delta is placed after text that is not there")
        return self

    @classmethod
    def from_completion(
        cls,
        completion: Completion,
        chunks: Sequence[str] | None = None,
        tool_deltas: Sequence[tuple[int, ToolCallDelta]] | None = None,
        *,
        created_at: float,
    ) -> CachedReply:
        """``chunks``: the texts of the streamed chunks in order (empty ones are dropped) and
        ``tool_deltas`` its tool-call deltas, each after that many text chunks (as
        :class:`~helios.providers.base.StreamAssembler` keeps them); ``None`` for a
        non-streamed reply, which then replays as its text, then one delta per tool call."""
        texts = (completion.text,) if chunks is None else chunks
        parts = tuple(part for part in texts if part)
        if tool_deltas is None:
            tool_deltas = [
                (len(parts), ToolCallDelta(index=i, id=c.id, name=c.name, arguments=c.arguments))
                for i, c in enumerate(completion.tool_calls)
            ]
        return cls(
            text=completion.text,
            chunks=parts,
            usage=completion.usage,
            model=completion.model,
            provider=completion.provider,
            finish_reason=completion.finish_reason,
            created_at=created_at,
            duration_s=completion.duration_s,
            tool_deltas=tuple(PlacedToolDelta(after=a, delta=d) for a, d in tool_deltas),
        )

    def to_completion(self) -> Completion:
        """The reply as a :class:`Completion`; timings and cost are for the engine to set."""
        assembler = StreamAssembler(self.provider, self.model)
        for chunk in self.replay():
            assembler.add(chunk)
        return assembler.completion(streamed=False)

    def replay(self) -> tuple[Chunk, ...]:
        """The original stream: one chunk per original chunk, each tool-call delta where it
        came, then usage and finish reason in a last empty chunk, as providers end theirs."""
        replayed: list[Chunk] = []
        deltas = list(self.tool_deltas)
        for position in range(len(self.chunks) + 1):
            while deltas and deltas[0].after == position:
                replayed.append(Chunk(tool_calls=(deltas.pop(0).delta,)))
            if position < len(self.chunks):
                replayed.append(Chunk(text=self.chunks[position]))
        replayed.append(Chunk(usage=self.usage, finish_reason=self.finish_reason))
        return tuple(replayed)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> CachedReply:
        """Raises ``ValueError`` (a pydantic ``ValidationError``) on anything undecodable."""
        return cls.model_validate_json(raw)


@dataclass(slots=True)
class CacheCounts:
    """Lookups are ``hits + misses``; an error is also counted as the miss it caused."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    stores: int = 0

    @property
    def hit_rate(self) -> float | None:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None

    def add(self, other: CacheCounts) -> None:
        self.hits += other.hits
        self.misses += other.misses
        self.errors += other.errors
        self.stores += other.stores


@dataclass(slots=True)
class CacheStats:
    """In-memory counters per persona (``"-"`` for none); a metrics exporter reads these."""

    by_persona: dict[str, CacheCounts] = field(default_factory=dict)

    def of(self, persona: str | None) -> CacheCounts:
        return self.by_persona.setdefault(NO_PERSONA if persona is None else persona, CacheCounts())

    @property
    def total(self) -> CacheCounts:
        total = CacheCounts()
        for counts in self.by_persona.values():
            total.add(counts)
        return total

    def snapshot(self) -> dict[str, Any]:
        """Plain data for JSON: ``{"total": {...}, "by_persona": {persona: {...}}}``."""

        def plain(counts: CacheCounts) -> dict[str, Any]:
            return {**asdict(counts), "hit_rate": counts.hit_rate}

        return {
            "total": plain(self.total),
            "by_persona": {name: plain(c) for name, c in sorted(self.by_persona.items())},
        }


class ExactCache:
    """The L2 layer over one backend: keys, serialization, TTL, counters, failing open."""

    def __init__(self, backend: CacheBackend, *, ttl_s: float | None = 3600.0) -> None:
        self.backend = backend
        self.ttl_s = ttl_s
        self.stats = CacheStats()

    def key_for(self, request: Request, provider: str, model: str) -> str:
        return request_key(request, provider, model)

    async def lookup(self, key: str, *, persona: str | None = None) -> CachedReply | None:
        """The cached reply, or ``None``; never raises for a backend or a bad value."""
        counts = self.stats.of(persona)
        try:
            raw = await self.backend.get(key)
        except CacheBackendError as exc:
            counts.misses += 1
            counts.errors += 1
            level = failure_log_level(self.backend.breaker)
            logger.log(level, "L2 cache lookup failed on %s: %s", self.backend.name, exc)
            return None
        if raw is None:
            counts.misses += 1
            return None
        try:
            reply = CachedReply.from_bytes(raw)
        except ValidationError as exc:
            counts.misses += 1
            counts.errors += 1
            logger.warning("L2 cache value under %s is unreadable, deleting it: %s", key, exc)
            await self._forget(key)
            return None
        counts.hits += 1
        return reply

    async def store(
        self,
        key: str,
        reply: CachedReply,
        *,
        persona: str | None = None,
        ttl_s: float | None = None,
    ) -> bool:
        """Keep ``reply`` for ``ttl_s`` (the cache's own when ``None``); ``False`` when it
        was not stored (error, or a reply that ended in ``error``/``cancelled``). Never
        raises for a backend failure."""
        if reply.finish_reason in UNCACHEABLE_FINISH:
            return False
        counts = self.stats.of(persona)
        try:
            await self.backend.set(key, reply.to_bytes(), ttl_s=ttl_s or self.ttl_s)
        except CacheBackendError as exc:
            counts.errors += 1
            level = failure_log_level(self.backend.breaker)
            logger.log(level, "L2 cache store failed on %s: %s", self.backend.name, exc)
            return False
        counts.stores += 1
        return True

    async def invalidate(
        self, *, key: str | None = None, tenant: str | None = None, task_type: str | None = None
    ) -> int:
        """Delete one key, a tenant, a task type (of one tenant or of all), or every L2 entry
        when nothing is given; the number of entries removed. Raises CacheBackendError."""
        if key is not None:
            if tenant is not None or task_type is not None:
                raise ValueError("invalidate by key, or by tenant/task_type, not both")
            return int(await self.backend.delete(key))
        if tenant is not None or task_type is None:
            return await self.backend.delete_prefix(prefix_for(tenant, task_type))
        # task type across tenants: tenant leads the key, so no prefix selects it
        doomed = [
            found
            async for found in self.backend.scan(prefix_for())
            if (namespace := namespace_of(found)) is not None and namespace[1] == task_type
        ]
        removed = 0
        for found in doomed:
            removed += await self.backend.delete(found)
        return removed

    async def entries(
        self, *, tenant: str | None = None, task_type: str | None = None, limit: int = 100
    ) -> list[EntryInfo]:
        """Up to ``limit`` L2 entries of a tenant, a task type (of one tenant or of all), or
        all, most recently hit first; looking is not a hit. Raises CacheBackendError."""
        if tenant is not None or task_type is None:
            return await self.backend.entries(prefix_for(tenant, task_type), limit=limit)
        check_limit(limit)
        # task type across tenants: tenant leads the key, so no prefix selects it
        infos = [
            await self.backend.info(found)
            async for found in self.backend.scan(prefix_for())
            if (namespace := namespace_of(found)) is not None and namespace[1] == task_type
        ]
        return most_recent_first((info for info in infos if info is not None), limit)

    def snapshot(self) -> dict[str, Any]:
        """Counters and configuration as plain data, for ``--json`` output and the server."""
        return {"backend": self.backend.name, "ttl_s": self.ttl_s, **self.stats.snapshot()}

    async def aclose(self) -> None:
        await self.backend.aclose()

    async def _forget(self, key: str) -> None:
        try:
            await self.backend.delete(key)
        except CacheBackendError as exc:
            logger.warning("L2 cache could not delete %s: %s", key, exc)
