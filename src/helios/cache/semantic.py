"""L3, the semantic cache: a reply to a question that *means* the same, in the same context.

The last user message is embedded and searched among the entries of its **context**: a hash
of the tenant, the task type, the model tier, the system prompt, the earlier turns of the
conversation, the requested response format and the embedder. Two conversations that
differ anywhere before the last message never share entries, so "yes, cancel it" after
"shall I cancel your order?" can never answer "yes, cancel it" after "shall I cancel your
subscription?".

Candidates at or above the cosine threshold go to the hit verifier
(:mod:`helios.cache.verifier`), which rejects the known traps of semantic caches (negation,
swapped entities, changed numbers, narrowed scope) and may re-rank; cosine alone cannot
tell "how do I enable 2FA" from "how do I disable 2FA".

What L3 will not answer, by design:

- task types listed in ``skip_task_types`` (by default Helios's own persona templates:
  dialectic, dag, plan, ask): the longer a template around a short goal, the closer two
  goals that differ in one word embed, so only L2's exact match is safe there;
- requests sampled above ``max_temperature``: the caller asked for variety;
- questions longer than ``MAX_QUESTION_CHARS``: the embedder reads 256 tokens, so two long
  prompts differing only past that point would embed identically. Semantic caching is for
  questions, not for templated documents (L2 still catches exact repeats of those);
- anything with a ``response_schema`` mismatch: the format is part of the context.

Like L2 it fails open: an index or embedder failure is a miss counted as an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from helios.breaker import failure_log_level
from helios.cache.backends.base import Clock
from helios.cache.backends.vector import SemanticEntry, VectorIndex, VectorMatch
from helios.cache.exact import UNCACHEABLE_FINISH, CachedReply
from helios.cache.keys import escape_part
from helios.cache.verifier import Candidate, Verdict
from helios.config.cache import SemanticCacheSettings
from helios.embeddings.base import Embedder
from helios.errors import CacheBackendError, ConfigError, HeliosError
from helios.messages import Request

if TYPE_CHECKING:
    import numpy
    from numpy.typing import NDArray

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 1000
"""About 200 tokens: safely inside the embedder's 256-token window (see module docstring)."""
CONTEXT_VERSION = 2
"""Bump when the context payload changes shape, so old entries stop matching."""
_VECTOR_MEMO = 256
REFUSED = "rejected by the verifier"
"""In a lookup's reason when candidates reached the threshold and the verifier refused them."""


class CandidateSelector(Protocol):
    """What L3 needs of a verifier: :class:`~helios.cache.verifier.HitVerifier` is one."""

    def select(
        self, query: str, candidates: Sequence[Candidate], threshold: float, *, aligned: bool = True
    ) -> tuple[int, Verdict] | None: ...

    def verify(self, query: str, candidate: Candidate) -> Verdict: ...


@dataclass(frozen=True, slots=True)
class SemanticHit:
    reply: CachedReply
    similarity: float
    confidence: float
    matched_question: str
    entry_id: str


@dataclass(frozen=True, slots=True)
class SemanticLookup:
    """The outcome of one L3 lookup; ``hit`` is ``None`` on a miss or a skip."""

    hit: SemanticHit | None
    checked: bool
    """``False`` when L3 was skipped (temperature, length, no user text)."""
    reason: str
    best_similarity: float | None = None
    error: str | None = None


@dataclass(slots=True)
class SemanticCounts:
    lookups: int = 0
    hits: int = 0
    misses: int = 0
    skipped: int = 0
    rejected: int = 0
    """Candidates above the threshold that the verifier turned down."""
    errors: int = 0
    stores: int = 0
    similarity_sum: float = 0.0

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None

    @property
    def average_similarity(self) -> float | None:
        return self.similarity_sum / self.hits if self.hits else None

    def snapshot(self) -> dict[str, Any]:
        return {
            "lookups": self.lookups,
            "hits": self.hits,
            "misses": self.misses,
            "skipped": self.skipped,
            "rejected": self.rejected,
            "errors": self.errors,
            "stores": self.stores,
            "hit_rate": self.hit_rate,
            "average_similarity": self.average_similarity,
        }


def question_of(request: Request) -> str:
    """The text L3 embeds: the last user message."""
    return request.messages[-1].content


def context_of(request: Request, tier: str, embedder: str) -> str:
    """``<tenant>:<task_type>:<sha256>`` of everything that must match besides the question.

    Tenant and task type lead in clear (escaped like L2 keys) so that they can be read back
    and invalidated; the hash covers the tier, the system prompt, every earlier turn, the
    response format and the embedder (vectors of two embedders are not comparable).
    """
    payload = {
        "v": CONTEXT_VERSION,
        "namespace": request.cache.namespace,
        "tier": tier,
        "system": request.system,
        "turns": [[m.role, m.content] for m in request.messages[:-1]],
        "schema": request.response_schema,
        "embedder": embedder,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{escape_part(request.context.tenant)}:{escape_part(request.task_type)}:{digest}"


class SemanticCache:
    """The L3 layer: embedder + vector index + verifier, with thresholds, TTL and counters."""

    def __init__(
        self,
        index: VectorIndex,
        embedder: Embedder,
        settings: SemanticCacheSettings,
        *,
        verifier: CandidateSelector | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self.verifier = verifier
        self.clock = clock
        self.counts = SemanticCounts()
        # a miss is usually followed by a store of the same question: embed it once
        self._vectors: OrderedDict[str, NDArray[numpy.float32]] = OrderedDict()

    def skip_reason(self, request: Request) -> str | None:
        """Why L3 must not answer ``request``, or ``None`` when it may."""
        if request.tools or request.messages[-1].role == "tool":
            # a call that may call tools acts on what it is given: a near question is not
            # the same action (and a tool result is no question at all)
            return "the request offers tools or answers a tool call"
        if request.task_type in self.settings.skip_task_types:
            # A persona prompt is a template around a short goal: the longer the template,
            # the less one changed word of the goal ("startup" -> "bank") moves its embedding.
            return f"task type {request.task_type} is in cache.semantic.skip_task_types"
        temperature = request.params.temperature
        if temperature is not None and temperature > self.settings.max_temperature:
            return (
                f"temperature {temperature:g} is above cache.semantic.max_temperature "
                f"{self.settings.max_temperature:g}"
            )
        question = question_of(request)
        if not question.strip():
            return "the last user message is empty"
        if len(question) > MAX_QUESTION_CHARS:
            return f"the question is longer than {MAX_QUESTION_CHARS} characters"
        return None

    def threshold_for(self, request: Request, override: float | None = None) -> float:
        return override if override is not None else self.settings.threshold_for(request.task_type)

    async def lookup(
        self, request: Request, tier: str, *, threshold: float | None = None
    ) -> SemanticLookup:
        """The best verified entry of the request's context at or above the threshold."""
        skip = self.skip_reason(request)
        if skip is not None:
            self.counts.skipped += 1
            return SemanticLookup(None, checked=False, reason=skip)
        self.counts.lookups += 1
        question = question_of(request)
        minimum = self.threshold_for(request, threshold)
        context = context_of(request, tier, self.embedder.name)
        try:
            matches = await self._nearest(question, context)
        except HeliosError as exc:
            return self._failed("lookup", exc)
        best = matches[0].score if matches else None
        candidates = [Candidate(question=m.entry.question, score=m.score) for m in matches]
        # a caller's own threshold is honoured as given: no aligned floor below it
        chosen = self._select(question, candidates, minimum, aligned=threshold is None)
        if chosen is None:
            self.counts.misses += 1
            above = sum(c.score >= minimum for c in candidates)
            self.counts.rejected += above
            reason = (
                self._refusal(question, candidates[0], above, minimum)
                if above
                else f"no entry at or above {minimum:g}"
            )
            return SemanticLookup(None, checked=True, reason=reason, best_similarity=best)
        position, confidence, verdict_reason = chosen
        match = matches[position]
        try:
            reply = CachedReply.from_bytes(match.entry.reply)
        except ValidationError as exc:
            logger.warning("L3 entry %s is unreadable, deleting it: %s", match.entry.entry_id, exc)
            await self._forget(match.entry.entry_id)
            self.counts.errors += 1
            self.counts.misses += 1
            return SemanticLookup(None, checked=True, reason="entry unreadable", error=str(exc))
        self.counts.hits += 1
        self.counts.similarity_sum += match.score
        hit = SemanticHit(
            reply=reply,
            similarity=match.score,
            confidence=confidence,
            matched_question=match.entry.question,
            entry_id=match.entry.entry_id,
        )
        return SemanticLookup(hit, checked=True, reason=verdict_reason, best_similarity=best)

    async def store(
        self, request: Request, tier: str, reply: CachedReply, *, ttl_s: float | None = None
    ) -> bool:
        """Keep ``reply`` for the request's question and context; ``False`` when skipped or
        failed (never raises for a backend failure)."""
        if reply.finish_reason in UNCACHEABLE_FINISH or self.skip_reason(request) is not None:
            return False
        question = question_of(request)
        try:
            vector = await self._embed(question)
            context = context_of(request, tier, self.embedder.name)
            now = self.clock()
            entry = SemanticEntry(
                entry_id=hashlib.sha256(f"{context}\x00{question}".encode()).hexdigest(),
                context=context,
                tenant=request.context.tenant,
                task_type=request.task_type,
                question=question,
                reply=reply.to_bytes(),
                created_at=now,
                expires_at=now + (ttl_s or self.settings.ttl_s),
            )
            await self.index.add(entry, vector)
        except HeliosError as exc:
            self._failed("store", exc)
            return False
        self.counts.stores += 1
        return True

    async def invalidate(self, *, tenant: str | None = None, task_type: str | None = None) -> int:
        """Raises CacheBackendError: an operator who asked for a purge must know it failed."""
        return await self.index.invalidate(tenant=tenant, task_type=task_type)

    async def aclose(self) -> None:
        await self.index.aclose()

    # -- internals ----------------------------------------------------------------------
    def _select(
        self, question: str, candidates: list[Candidate], minimum: float, *, aligned: bool
    ) -> tuple[int, float, str] | None:
        if self.verifier is None or not self.settings.verify:
            if candidates and candidates[0].score >= minimum:
                return 0, candidates[0].score, "cosine only"
            return None
        chosen = self.verifier.select(question, candidates, minimum, aligned=aligned)
        if chosen is None:
            return None
        position, verdict = chosen
        return position, verdict.confidence, verdict.reason

    def _refusal(self, question: str, nearest: Candidate, above: int, minimum: float) -> str:
        """Why the candidates above the threshold were refused, told by the nearest one."""
        summary = f"{above} candidate(s) above {minimum:g} {REFUSED}"
        if self.verifier is None:
            return summary
        verdict = self.verifier.verify(question, nearest)
        why = verdict.reason if not verdict.accepted else "declined"
        return f"{summary}; nearest ({nearest.score:.3f}): {why}"

    async def _nearest(self, question: str, context: str) -> list[VectorMatch]:
        k = self.settings.candidates
        if question in self._vectors or not (self.embedder.in_process and self.index.in_process):
            return await self.index.search(context, await self._embed(question), k=k)
        # A local model and a local index: one worker-thread hop for both (0.2 ms less
        # than awaiting each, bench/README.md)
        vector, matches = await asyncio.to_thread(self._embed_and_search_now, question, context)
        self._remember(question, vector)
        return matches

    def _embed_and_search_now(
        self, question: str, context: str
    ) -> tuple[NDArray[numpy.float32], list[VectorMatch]]:
        with self._embedder_errors():
            rows = self.embedder.embed_now([question])
        vector = self._checked(rows)
        return vector, self.index.search_now(context, vector, k=self.settings.candidates)

    async def _embed(self, text: str) -> NDArray[numpy.float32]:
        memo = self._vectors.get(text)
        if memo is not None:
            self._vectors.move_to_end(text)
            return memo
        with self._embedder_errors():
            rows = await self.embedder.embed([text])
        vector = self._checked(rows)
        self._remember(text, vector)
        return vector

    @contextmanager
    def _embedder_errors(self) -> Iterator[None]:
        """An embedder's own failure as a CacheBackendError (the layer fails open)."""
        try:
            yield
        except HeliosError:
            raise
        except Exception as exc:  # onnxruntime/SDK errors are untyped
            raise CacheBackendError(f"embedder {self.embedder.name} failed: {exc}") from exc

    def _checked(self, rows: NDArray[numpy.float32]) -> NDArray[numpy.float32]:
        vector: NDArray[numpy.float32] = rows[0]
        if vector.shape[-1] != self.index.dim:
            raise ConfigError(
                f"embedder {self.embedder.name} gives {vector.shape[-1]} dimensions, the L3 "
                f"index {self.index.name} holds {self.index.dim}"
            )
        return vector

    def _remember(self, text: str, vector: NDArray[numpy.float32]) -> None:
        """Keep ``text``'s vector (on the event loop's thread only: the memo is unlocked)."""
        self._vectors[text] = vector
        self._vectors.move_to_end(text)
        if len(self._vectors) > _VECTOR_MEMO:
            self._vectors.popitem(last=False)

    def _failed(self, operation: str, exc: HeliosError) -> SemanticLookup:
        self.counts.errors += 1
        if operation == "lookup":
            self.counts.misses += 1
        level = failure_log_level(self.index.breaker)
        logger.log(level, "L3 cache %s failed on %s: %s", operation, self.index.name, exc)
        return SemanticLookup(None, checked=True, reason=f"{operation} failed", error=str(exc))

    async def _forget(self, entry_id: str) -> None:
        try:
            await self.index.delete(entry_id)
        except CacheBackendError as exc:
            logger.warning("L3 cache could not delete %s: %s", entry_id, exc)
