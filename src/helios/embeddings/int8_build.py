"""An int8 build of the packaged MiniLM: the same model, computed in 8 bits, built once.

The packaged ONNX file stores int8 weights that its graph casts back to float, so
onnxruntime computes it in fp32, 36 large matrix products in as many separate operators
each with their own dispatch. This module derives, once per file and recipe, a graph that
onnxruntime runs about 1.4x faster on a short question, with the same vectors (cosine to
the packaged graph's 0.9996 on average, >= 0.998 on each of GPTCache's texts;
bench/README.md has its hit counts beside the packaged graph's):

1. fold the dequantisation casts of the weights (onnxruntime's basic optimisation, saved
   to a file), keeping the lookup tables in int8 (:mod:`helios.embeddings.lookup_tables`);
2. fuse each layer's attention into one operator (:mod:`helios.embeddings.attention_fusion`)
   and the layer norms and bias + GELU (``onnxruntime.transformers.optimizer``, Python
   fusions only);
3. compute the products in int8 with activations quantised per token, after SmoothQuant
   (:mod:`helios.embeddings.token_quant`); the feed-forward output products stay in float.

Why not ``quantize_dynamic``: it quantises activations with one scale per tensor, so a
text's vector depended on its batch-mates and moved 1-3 % from the packaged one, which
cost 15-33 correct GPTCache hits (bench/README.md, "Embedder re-quantisation"). Per token,
a text embedded alone equals itself in any batch.

Vectors still differ from the packaged graph's in the fourth decimal, so the build is
another embedder (:data:`~helios.embeddings.base.LOCAL_MINILM_INT8`): its name is part of
every cache key, and the two never meet in one index.

The build needs the ``onnx`` and ``sympy`` packages (the embeddings extra) and takes about
7 s in a child process; the result is written to a temporary file and renamed into place,
so processes building at once never read a half-written model, and a finished file is
reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from helios.embeddings.attention_fusion import fuse_attention
from helios.embeddings.lookup_tables import gather_before_dequantising
from helios.embeddings.token_quant import (
    CALIBRATION,
    SMOOTHING,
    activation_maxima,
    quantizable_products,
    quantize_per_token,
    smooth,
)
from helios.errors import ConfigError, MissingDependency

RECIPE = "mha-fused-i8tables-sq07-tokenint8-r2"
"""Bump when a step above changes: a new recipe is a new file (and a new embedder name)."""
HEADS, HIDDEN = 12, 384
"""all-MiniLM-L6-v2's attention heads and width, which the fusions need to be told."""


def built_model(source: Path, tokenizer: Path, folder: Path) -> Path:
    """The int8 build of ``source`` in ``folder``, made on first use (``tokenizer`` reads
    the calibration sentences)."""
    inputs = hashlib.sha256((_digest(str(source)) + _digest(str(tokenizer))).encode())
    target = folder / f"minilm-l6-{RECIPE}-{inputs.hexdigest()[:12]}.onnx"
    if target.is_file():
        return target
    for module in ("onnx", "sympy"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependency(module, "embeddings", "The int8 embedding model build")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".building-") as work:
            built = Path(work) / "model.onnx"
            # In a child process: the fusions and the quantiser configure the root logger
            # when imported and hold the whole graph in memory (~300 MB) while they work.
            done = subprocess.run(
                [sys.executable, "-m", __name__, str(source), str(tokenizer), str(built)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0 or not built.is_file():
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise ConfigError(f"cannot build the int8 embedding model from {source}: {last}")
            os.replace(built, target)
    except OSError as exc:
        raise ConfigError(
            f"embeddings.build_dir: cannot write the int8 embedding model to {folder}: {exc} "
            "(set embeddings.build_dir to a writable folder, or embeddings.int8: false)"
        ) from exc
    _remove_earlier_recipes(folder)
    return target


def _remove_earlier_recipes(folder: Path) -> None:
    """Delete the builds of other recipes (up to 70 MB each) once this one is in place: after
    an upgrade nothing reads them (their embedder name is gone). A process still running
    them keeps its loaded copy."""
    for old in folder.glob("minilm-l6-*.onnx"):
        if not old.name.startswith(f"minilm-l6-{RECIPE}-"):
            with contextlib.suppress(OSError):
                old.unlink()


@lru_cache(maxsize=8)
def _digest(path: str) -> str:
    """A file's sha256 (the model's 23 MB: about 30 ms, once per process)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def build(source: Path, tokenizer: Path, out: Path) -> None:
    """Steps 1-3 of the module docstring, ``source`` to ``out`` (in the child process)."""
    logging.basicConfig(level=logging.WARNING)  # before the imports that would say INFO
    import onnx
    import onnxruntime  # type: ignore[import-untyped]
    from onnxruntime.transformers.optimizer import optimize_model  # type: ignore[import-untyped]

    prepared, folded = out.with_name("prepared.onnx"), out.with_name("folded.onnx")
    packaged = onnx.load(str(source))
    gather_before_dequantising(packaged)
    onnx.save(packaged, str(prepared))
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded)
    onnxruntime.InferenceSession(str(prepared), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(folded))
    if not fuse_attention(graph, heads=HEADS, head_size=HIDDEN // HEADS):
        logging.warning("the attention of %s is of another shape: left unfused", source)
    onnx.save(graph, str(folded))
    # opt_level=0: the Python fusions only (level 1 would import torch to check versions)
    fused = optimize_model(
        str(folded), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN, opt_level=0
    ).model
    products = quantizable_products(fused)
    sentences = CALIBRATION.read_text(encoding="utf-8").splitlines()
    smooth(fused, products, activation_maxima(fused, products, tokenizer, sentences), SMOOTHING)
    quantize_per_token(fused, products)
    onnx.save(fused, str(out))


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
