"""Sentence embeddings: the :class:`Embedder` contract and the local MiniLM model.

``OnnxMiniLM`` is imported on first access, so that importing this package (as the
pipeline does for the contract) never loads numpy or onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from helios.embeddings.base import LOCAL_MINILM, LOCAL_MINILM_INT8, Embedder, embedder_name_for

if TYPE_CHECKING:
    from helios.embeddings.onnx import OnnxMiniLM

__all__ = ["LOCAL_MINILM", "LOCAL_MINILM_INT8", "Embedder", "OnnxMiniLM", "embedder_name_for"]


def __getattr__(name: str) -> Any:
    if name == "OnnxMiniLM":
        from helios.embeddings.onnx import OnnxMiniLM

        return OnnxMiniLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
