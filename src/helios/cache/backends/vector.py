"""The vector index contract behind L3: entries with a unit vector, searched per context.

An L3 entry belongs to one *context* (a hash of tenant, task type, model tier, system
prompt and the earlier conversation turns, built by :mod:`helios.cache.semantic`); a
search only ever sees entries of the context it names, so "yes, cancel it" in two
different conversations can never match. Vectors are L2-normalised by the embedder, so
the score of a match is the cosine similarity (the dot product), in ``[-1, 1]``.

Like :class:`~helios.cache.backends.base.CacheBackend`, an index only stores and finds:
what an entry means (the reply, the verifier, the threshold) is the semantic layer's
business. Failures raise :class:`~helios.errors.CacheBackendError`; the layer above fails
open.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from helios.breaker import CircuitBreaker
from helios.cache.backends.base import Clock

if TYPE_CHECKING:  # numpy comes with the embeddings extra
    import numpy
    from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class SemanticEntry:
    """One stored question and its reply.

    ``entry_id`` is chosen by the layer above (a hash of context and question), so storing
    the same question again in the same context replaces the entry instead of adding one.
    """

    entry_id: str
    context: str
    tenant: str
    task_type: str
    question: str
    """The text that was embedded (the last user message)."""
    reply: bytes
    """The serialized reply (:meth:`helios.cache.exact.CachedReply.to_bytes`)."""
    created_at: float
    expires_at: float | None
    """Seconds since the epoch; ``None`` never expires."""


@dataclass(frozen=True, slots=True)
class VectorMatch:
    entry: SemanticEntry
    score: float
    """Cosine similarity between the query vector and the entry's vector."""


@dataclass(frozen=True, slots=True)
class IndexStats:
    entries: int
    contexts: int


class VectorIndex(ABC):
    """Stores :class:`SemanticEntry` rows with their vectors; finds the nearest per context.

    Safe for concurrent use on one event loop. ``dim`` is fixed at construction: adding or
    searching a vector of another size raises ``ValueError`` (a programming error, not a
    backend failure).
    """

    name: str
    dim: int
    breaker: CircuitBreaker | None = None
    """The deadline and circuit breaker of an index on a network store (``None``: local)."""
    in_process: bool = False
    """Whether :meth:`search_now` searches here, blocking (a local file and memory)."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock

    @abstractmethod
    async def add(self, entry: SemanticEntry, vector: NDArray[numpy.float32]) -> None:
        """Insert ``entry`` or replace the entry with the same ``entry_id`` (vector too)."""

    @abstractmethod
    async def search(
        self, context: str, vector: NDArray[numpy.float32], *, k: int
    ) -> list[VectorMatch]:
        """Up to ``k`` live (unexpired) entries of ``context``, highest score first."""

    def search_now(
        self, context: str, vector: NDArray[numpy.float32], *, k: int
    ) -> list[VectorMatch]:
        """:meth:`search` from a worker thread, blocking it; only where :attr:`in_process`."""
        raise NotImplementedError(f"{type(self).__name__} searches with I/O: await search()")

    @abstractmethod
    async def get(self, entry_id: str) -> SemanticEntry | None:
        """One live entry by id."""

    @abstractmethod
    async def delete(self, entry_id: str) -> bool:
        """Remove one entry; ``True`` when something was removed."""

    @abstractmethod
    async def invalidate(self, *, tenant: str | None = None, task_type: str | None = None) -> int:
        """Remove the entries of a tenant, a task type (across tenants), both, or every entry
        when neither is given; the number removed (expired ones may be counted or not)."""

    @abstractmethod
    async def stats(self) -> IndexStats:
        """Live entries and the number of distinct contexts holding them."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise :class:`~helios.errors.CacheBackendError` when the index is unreachable."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Persist what must survive and release connections; the default holds none."""
