"""Build a dynamically quantised (int8 MatMul) copy of the packaged MiniLM ONNX model.

The packaged model stores int8 weights that its graph casts back to float on every run,
so onnxruntime computes in fp32. This script folds those casts (onnxruntime's basic graph
optimisation, saved to a file) and re-quantises the folded graph with
``onnxruntime.quantization.quantize_dynamic``: int8 weights and int8 activations with a
scale computed at run time per tensor.

A build-time step only: it needs the ``onnx`` package, which the runtime does not.
The result is another embedder (its vectors differ from the packaged model's: cosine
~0.97), so it gets another name and never shares an index with the packaged model.

Usage: .venv/bin/python scripts/quantize_embedder.py OUT.onnx [--per-channel]
           [--reduce-range] [--ops MatMul,Gather,...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def fold(source: Path, folded: Path) -> None:
    import onnxruntime  # type: ignore[import-untyped]

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded)
    onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def quantize(
    source: Path, out: Path, *, per_channel: bool, reduce_range: bool, ops: list[str] | None
) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]

    with tempfile.TemporaryDirectory() as folder:
        folded = Path(folder) / "folded.onnx"
        fold(source, folded)
        quantize_dynamic(
            str(folded),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
            op_types_to_quantize=ops,
        )


def main() -> None:
    from helios.embeddings.onnx import OnnxMiniLM

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", type=Path, help="default: the packaged model")
    parser.add_argument("--per-channel", action="store_true")
    parser.add_argument("--reduce-range", action="store_true")
    parser.add_argument("--ops", help="comma-separated op types (default: all supported)")
    args = parser.parse_args()
    source = args.source or OnnxMiniLM().model_path  # the packaged model, not loaded
    ops = args.ops.split(",") if args.ops else None
    quantize(
        source, args.out, per_channel=args.per_channel, reduce_range=args.reduce_range, ops=ops
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
