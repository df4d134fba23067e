"""The embedded L3 index's saved graphs: writing them, and trusting them only when current.

Only graphs are saved (small contexts are rebuilt from their rows in milliseconds), under
``<file>.usearch/dim<dim>/``: one file per context, named by the context's SHA-256, plus
``manifest.json`` with the settings and each file's size, CRC-32, entry count and highest
key. At load a graph is taken from its file only when all of those and its set of keys
match the rows in SQLite; otherwise (missing, damaged, stale) the index rebuilds it from
the rows. Several processes may share the SQLite file, and one process's save may replace
another's files: these checks are what make that harmless.

Files are written to a temporary name and renamed into place, so a reader never sees half
a graph or half a manifest.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helios.errors import CacheBackendError, MissingDependency

try:
    import numpy
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependency("usearch", "semantic", "The usearch semantic index") from exc

if TYPE_CHECKING:
    from usearch.index import Index

    from helios.cache.backends.usearch_graphs import GraphDType, GraphVectors, Keys

_FORMAT = 1
_MANIFEST = "manifest.json"


class GraphFiles:
    """The saved graphs of one index in ``directory``; ``new_graph`` makes the empty graph
    a file is loaded into."""

    def __init__(
        self,
        directory: Path,
        *,
        dim: int,
        dtype: GraphDType,
        connectivity: int,
        new_graph: Callable[[], Index],
    ) -> None:
        self.directory = directory
        self.new_graph = new_graph
        self.settings: dict[str, object] = {
            "format": _FORMAT,
            "dim": dim,
            "dtype": dtype,
            "metric": "ip",
            "connectivity": connectivity,
        }

    def read_manifest(self) -> dict[str, Any]:
        """The saved graphs' records by file name, or none when the manifest is unusable."""
        try:
            manifest = json.loads((self.directory / _MANIFEST).read_text(encoding="utf-8"))
            if manifest.get("settings") != self.settings:
                return {}
            graphs = manifest["graphs"]
            return graphs if isinstance(graphs, dict) else {}
        except (OSError, ValueError, KeyError, AttributeError):
            return {}

    def saved_graph(
        self,
        saved: dict[str, Any],
        context: str,
        count: int,
        max_id: int,
        row_ids: Callable[[], Keys],
    ) -> Index | None:
        """The context's saved graph when it holds exactly the context's rows, else ``None``.

        ``saved`` is :meth:`read_manifest`'s answer; ``count``, ``max_id`` and ``row_ids``
        (the context's row ids, in order) describe the rows in SQLite."""
        name = _file_name(context)
        record = saved.get(name)
        if not isinstance(record, dict) or record.get("count") != count:
            return None
        if record.get("max_id") != max_id:
            return None
        try:
            data = (self.directory / name).read_bytes()
            # checked before usearch parses it: a damaged graph could point anywhere
            if len(data) != record.get("size") or zlib.crc32(data) != record.get("crc32"):
                return None
            graph = self.new_graph()
            graph.load(data)
        except (OSError, RuntimeError, ValueError):
            return None
        keys = numpy.sort(numpy.asarray(graph.keys, dtype=numpy.int64))
        return graph if numpy.array_equal(keys, row_ids()) else None

    def save(self, graphs: dict[str, GraphVectors]) -> None:
        """Save the graphs that changed, then a manifest naming every saved graph; files of
        contexts no longer in ``graphs`` are removed. Raises :class:`CacheBackendError`."""
        if not graphs and not self.directory.exists():
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            records = self.read_manifest()
            kept: dict[str, Any] = {}
            for context, vectors in graphs.items():
                name = _file_name(context)
                if not vectors.dirty and name in records:
                    kept[name] = records[name]
                    continue
                saved_bytes = vectors.graph.save()
                if saved_bytes is None:
                    raise OSError("usearch returned no bytes")
                data = bytes(saved_bytes)
                _write_atomically(self.directory / name, data)
                keys = numpy.asarray(vectors.graph.keys, dtype=numpy.int64)
                kept[name] = {
                    "count": len(keys),
                    "max_id": int(keys.max()) if len(keys) else 0,
                    "size": len(data),
                    "crc32": zlib.crc32(data),
                }
                vectors.dirty = False
            manifest = {"settings": self.settings, "graphs": kept}
            _write_atomically(self.directory / _MANIFEST, json.dumps(manifest).encode())
            for stale in self.directory.glob("*.usearch"):
                if stale.name not in kept:
                    stale.unlink(missing_ok=True)
        except OSError as exc:
            raise CacheBackendError(
                f"usearch semantic index {self.directory}: cannot save: {exc}"
            ) from exc


def _file_name(context: str) -> str:
    return f"{sha256(context.encode('utf-8', 'surrogatepass')).hexdigest()}.usearch"


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
