"""The embedder contract: texts in, L2-normalised float32 vectors out.

Rows are unit length, so the cosine similarity of two texts is the dot product of their
rows; every consumer (evidence retrieval, the semantic cache) relies on that. ``name``
identifies the model in cache keys: two embedders with the same name must produce the same
vectors, or cached vectors from one would be compared with fresh vectors from the other.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from helios.embeddings.int8_build import RECIPE

if TYPE_CHECKING:  # numpy comes with the embeddings extra; importing this module needs none
    import numpy
    from numpy.typing import NDArray

LOCAL_MINILM = "all-MiniLM-L6-v2-onnx-int8"
"""The name of the packaged local embedder (:class:`helios.embeddings.onnx.OnnxMiniLM` with
``int8=False``): the packaged graph, computed in fp32.

Kept here so that a caller can key a cache on it without importing onnxruntime or numpy.
"""
LOCAL_MINILM_INT8 = f"all-MiniLM-L6-v2-onnx-{RECIPE}"
"""The default local embedder: the same model's int8 build (:mod:`helios.embeddings.int8_build`),
whose vectors differ from the packaged graph's in the fourth decimal."""


def embedder_name_for(model_path: Path | None, *, int8: bool = True) -> str:
    """The local embedder's cache identity for ``model_path`` (``None``: the packaged model,
    as its int8 build unless ``int8`` is false).

    Another file must not share the packaged model's name, or vectors cached for one would
    be compared with vectors from the other; its path, size and mtime stand in for it.
    """
    if model_path is None:
        return LOCAL_MINILM_INT8 if int8 else LOCAL_MINILM
    resolved = model_path.expanduser().resolve()
    identity = str(resolved)
    if resolved.is_file():
        stat = resolved.stat()
        identity += f"|{stat.st_size}|{stat.st_mtime_ns}"
    return f"onnx-{resolved.stem}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


class Embedder(ABC):
    """Turns texts into unit vectors of ``dim`` dimensions."""

    name: str
    dim: int
    in_process: bool = False
    """Whether :meth:`embed_now` computes here, without I/O: a caller already in a worker
    thread may then embed there instead of hopping back through the event loop."""

    @abstractmethod
    async def embed(self, texts: Sequence[str]) -> NDArray[numpy.float32]:
        """One row per text, in order: shape ``(len(texts), dim)``, each row L2-normalised."""

    def embed_now(self, texts: Sequence[str]) -> NDArray[numpy.float32]:
        """:meth:`embed`, blocking the calling thread; only where :attr:`in_process`."""
        raise NotImplementedError(f"{type(self).__name__} embeds with I/O: await embed()")

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the embedder holds; the default holds nothing."""
