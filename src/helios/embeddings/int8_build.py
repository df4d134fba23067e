"""An int8 build of the packaged MiniLM: the same model, computed in 8 bits, built once.

The packaged ONNX file stores int8 weights that its graph casts back to float, so
onnxruntime computes it in fp32, 36 large matrix products in as many separate operators
each with their own dispatch. This module derives, once per file and recipe, a graph that
onnxruntime runs about 1.3x faster on a short question, with the same vectors (cosine to
the packaged graph's >= 0.999 on every text of bench/semantic_quality.py; its counts within
one hit):

1. fold the dequantisation casts (onnxruntime's basic optimisation, saved to a file);
2. fuse each layer's attention into one operator (:mod:`helios.embeddings.attention_fusion`)
   and the layer norms and bias + GELU (``onnxruntime.transformers.optimizer``, Python
   fusions only);
3. quantise every weight matrix to 8 bits in blocks of 32 (``MatMulNBits``), computed with
   int8 activations quantised per row and block (``accuracy_level`` 4).

Step 3 is why this and not ``quantize_dynamic``: that one quantises activations with one
scale per tensor, so a text's vector depended on its batch-mates and moved 1-3 % from the
packaged one, which cost 15-33 correct GPTCache hits (bench/README.md, "Embedder
re-quantisation"). Per row and block, a text embedded alone equals itself in any batch.

Vectors still differ from the packaged graph's in the fourth decimal, so the build is
another embedder (:data:`~helios.embeddings.base.LOCAL_MINILM_INT8`): its name is part of
every cache key, and the two never meet in one index.

The build needs the ``onnx`` and ``onnx-ir`` packages (the embeddings extra) and takes about
4 s in a child process; the result is written to a temporary file and renamed into place,
so processes building at once never read a half-written model, and a finished file is
reused.
"""

from __future__ import annotations

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
from helios.errors import ConfigError, MissingDependency

RECIPE = "mha-fused-nbits8-b32-r1"
"""Bump when a step above changes: a new recipe is a new file (and a new embedder name)."""
BLOCK_SIZE = 32
"""Blocks of 64 cost 4 correct and 3 more wrong GPTCache hits at 0.85, for no speed."""
HEADS, HIDDEN = 12, 384
"""all-MiniLM-L6-v2's attention heads and width, which the fusions need to be told."""


def built_model(source: Path, folder: Path) -> Path:
    """The int8 build of ``source`` in ``folder``, made on first use."""
    target = folder / f"minilm-l6-{RECIPE}-{_digest(str(source))[:12]}.onnx"
    if target.is_file():
        return target
    for module, package in (("onnx", "onnx"), ("onnx_ir", "onnx-ir")):
        if importlib.util.find_spec(module) is None:
            raise MissingDependency(package, "embeddings", "The int8 embedding model build")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".building-") as work:
            built = Path(work) / "model.onnx"
            # In a child process: the fusions and the quantiser configure the root logger
            # when imported and hold the whole graph in memory (~300 MB) while they work.
            done = subprocess.run(
                [sys.executable, "-m", __name__, str(source), str(built)],
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
    return target


@lru_cache(maxsize=8)
def _digest(path: str) -> str:
    """The source file's sha256 (23 MB: about 30 ms, once per process)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def build(source: Path, out: Path) -> None:
    """Steps 1-3 of the module docstring, ``source`` to ``out`` (in the child process)."""
    logging.basicConfig(level=logging.WARNING)  # before the imports that would say INFO
    import onnx
    import onnxruntime  # type: ignore[import-untyped]
    from onnxruntime.quantization.matmul_nbits_quantizer import (  # type: ignore[import-untyped]
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )
    from onnxruntime.transformers.optimizer import optimize_model  # type: ignore[import-untyped]

    folded = out.with_name("folded.onnx")
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded)
    onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(folded))
    if not fuse_attention(graph, heads=HEADS, head_size=HIDDEN // HEADS):
        logging.warning("the attention of %s is of another shape: left unfused", source)
    onnx.save(graph, str(folded))
    # opt_level=0: the Python fusions only (level 1 would import torch to check versions)
    fused = optimize_model(
        str(folded), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN, opt_level=0
    )
    config = DefaultWeightOnlyQuantConfig(
        block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=4, bits=8
    )
    quantizer = MatMulNBitsQuantizer(
        fused.model, block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=4, algo_config=config
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), use_external_data_format=False)


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]))
