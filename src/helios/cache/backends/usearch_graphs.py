"""The embedded L3 index's in-memory search structures, one per context.

:class:`~helios.cache.backends.usearch.UsearchIndex` keeps one of these per context,
because a context must only ever see its own entries, and one global graph filtered
afterwards loses recall when most contexts are tiny (a context is one conversation):

- a small context is an :class:`ExactVectors`, an exact numpy scan: exact, and faster
  than a graph at that size (measured at 384 dimensions: 55 us against 106 us);
- a bigger one is a :class:`GraphVectors`, a usearch HNSW graph made by :func:`new_graph`,
  inner product on the unit vectors (the cosine without the norms). f16 by default: at
  100k random 384-d vectors it takes half the memory of f32 (152 against 286 MB), builds
  and searches faster, and its recall@1 was within the measurement's noise of f32's.
  ``bf16`` searched faster still on a CPU with AVX-512 BF16; it stays an option because
  that depends on the CPU.

Both only hold keys (the SQLite rows' ids) and vectors, and return candidate keys; the
index rescores them from their float32 rows. This is the one module that imports usearch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Literal

from helios.errors import MissingDependency

# usearch's extension carries its own copy of libstdc++; when onnxruntime (the local
# embedder) is loaded after it, onnxruntime's start-up crashes the process (a segfault in
# libstdc++, usearch 2.26 + onnxruntime 1.31). Loaded the other way round both work, so
# onnxruntime, when installed, is always loaded first.
with contextlib.suppress(ImportError):
    import onnxruntime  # type: ignore[import-untyped]  # noqa: F401

try:
    import numpy
    from numpy.typing import NDArray
    from usearch.index import Index
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependency("usearch", "semantic", "The usearch semantic index") from exc

GraphDType = Literal["f16", "bf16", "f32"]
Keys = NDArray[numpy.int64]
Vector = NDArray[numpy.float32]


def new_graph(
    *,
    dim: int,
    dtype: GraphDType,
    connectivity: int,
    expansion_add: int,
    expansion_search: int,
) -> Index:
    """An empty HNSW graph; ``connectivity``/``expansion_*``: HNSW's M, efConstruction,
    efSearch."""
    return Index(
        ndim=dim,
        metric="ip",  # unit vectors: inner product is the cosine, without the norms
        dtype=dtype,
        connectivity=connectivity,
        expansion_add=expansion_add,
        expansion_search=expansion_search,
    )


class ExactVectors:
    """A small context: its vectors in one matrix, scanned whole (exact, no graph)."""

    def __init__(self, dim: int) -> None:
        self.keys = numpy.empty(0, dtype=numpy.int64)
        self.matrix = numpy.empty((0, dim), dtype=numpy.float32)

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, keys: Keys, vectors: Vector) -> None:
        self.keys = numpy.concatenate([self.keys, keys])
        self.matrix = numpy.concatenate([self.matrix, vectors])

    def remove(self, keys: Iterable[int]) -> None:
        kept = ~numpy.isin(self.keys, numpy.fromiter(keys, dtype=numpy.int64))
        self.keys, self.matrix = self.keys[kept], self.matrix[kept]

    def search(self, vector: Vector, count: int) -> list[int]:
        scores = self.matrix @ vector
        if count < len(scores):
            top = numpy.argpartition(-scores, count - 1)[:count]
            return [int(key) for key in self.keys[top[numpy.argsort(-scores[top])]]]
        return [int(key) for key in self.keys[numpy.argsort(-scores)]]


class GraphVectors:
    """A big context: a usearch HNSW graph; ``dirty`` until saved.

    ``tombstone_slack``: removed nodes tolerated beyond the live ones before a rebuild.
    """

    def __init__(
        self,
        new_graph: Callable[[], Index],
        graph: Index | None = None,
        *,
        tombstone_slack: int,
    ) -> None:
        self.new_graph = new_graph
        self.graph = new_graph() if graph is None else graph
        self.dirty = graph is None
        self.removed = 0
        self.tombstone_slack = tombstone_slack

    def __len__(self) -> int:
        return len(self.graph)

    def add(self, keys: Keys, vectors: Vector) -> None:
        self.graph.add(keys.astype(numpy.uint64), vectors, threads=0 if len(keys) > 1 else 1)
        self.dirty = True

    def remove(self, keys: Iterable[int]) -> None:
        for key in keys:
            self.removed += int(self.graph.remove(key))
        self.dirty = True
        if self.removed > max(len(self.graph), self.tombstone_slack):
            # removed nodes stay in the graph as tombstones: rebuild once they outnumber it
            live = numpy.asarray(self.graph.keys, dtype=numpy.uint64)
            vectors = numpy.asarray(self.graph.get(live), dtype=numpy.float32)
            self.graph = self.new_graph()
            if len(live):
                self.graph.add(live, vectors, threads=0)
            self.removed = 0

    def search(self, vector: Vector, count: int) -> list[int]:
        return [int(key) for key in self.graph.search(vector, count, threads=1).keys]


ContextVectors = ExactVectors | GraphVectors
