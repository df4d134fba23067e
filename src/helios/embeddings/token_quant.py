"""Int8 matrix products with activations quantised per token, for the embedder's build.

onnxruntime's fastest int8 product on x86 (``MatMulInteger``, MLAS's u8 x s8 kernel) was
about twice as fast as ``MatMulNBits`` on MiniLM's short inputs, but ``quantize_dynamic``
feeds it activations with one scale per tensor, and BERT's activations have outliers in a
few channels and a few tokens: vectors moved to 0.995 cosine. Two changes bring them back
to the fidelity of 8-bit blocks (cosine to the float graph 0.9996 mean, 0.9992 min on
fow-cache's questions):

1. **SmoothQuant** (Xiao et al., 2023): each product's input channel ``j`` is divided by
   ``s_j = max|X_j|^a / max|W_j|^(1-a)`` and the weight's row multiplied by it (the same
   product), which moves the channel outliers into the weights, quantised per column. The
   maxima come from running the float graph on :data:`CALIBRATION` (sentences of Helios's
   own documentation, never the evaluation sets); ``a`` = :data:`SMOOTHING`.
2. **One scale per token**: ``ReduceMax(Abs(x))`` over each row, ``x / scale`` rounded and
   shifted to uint8 around 128, ``MatMulInteger`` with the int8 weights, then the row and
   column scales multiplied back. No row depends on another, so a text's vector never
   depends on its batch-mates.

The feed-forward output products stay in float: their inputs are GELU outputs, heavy-tailed
within each token, and int8 there moved the vectors nearly twice as far as all the other
products together (1 - cosine 0.0007 against 0.0004), for a third of the time saved.
Only used at build time, in the child process of :mod:`helios.embeddings.int8_build`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CALIBRATION = Path(__file__).with_name("calibration.txt")
SMOOTHING = 0.7
"""SmoothQuant's migration strength: the best cosine to the float graph of 0.6-0.9 on
fow-cache's questions (a fidelity measure; 0.5 left the outliers, 0.9 moved them into the
weights)."""
_LEVELS = 127.0
_EPSILON = 1e-8


@dataclass(frozen=True, slots=True)
class Product:
    """One activation and the weight products that read it (Q, K and V share theirs)."""

    activation: str
    nodes: tuple[Any, ...]


def quantizable_products(model: Any) -> list[Product]:
    """Every float ``MatMul`` of ``model`` with a constant weight, grouped by input, but
    those fed by a GELU (see the module docstring)."""
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    grouped: dict[str, list[Any]] = {}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in constants:
            continue
        producer = producers.get(node.input[0])
        if producer is not None and producer.op_type in {"BiasGelu", "Gelu", "FastGelu"}:
            continue
        grouped.setdefault(node.input[0], []).append(node)
    return [Product(activation, tuple(nodes)) for activation, nodes in grouped.items()]


def activation_maxima(
    model: Any, products: Iterable[Product], tokenizer_path: Path, sentences: list[str]
) -> dict[str, Any]:
    """The largest ``|x|`` of each input channel of each product over ``sentences``."""
    import numpy
    import onnx
    import onnxruntime  # type: ignore[import-untyped]
    from onnx import TensorProto
    from tokenizers import Tokenizer

    names = [product.activation for product in products]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in names:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(
        probe.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    inputs = {node.name for node in session.get_inputs()}
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(256)
    maxima: dict[str, Any] = {}
    for sentence in sentences:
        ids = numpy.array([tokenizer.encode(sentence).ids], dtype=numpy.int64)
        feeds = {"input_ids": ids, "attention_mask": numpy.ones_like(ids)}
        if "token_type_ids" in inputs:
            feeds["token_type_ids"] = numpy.zeros_like(ids)
        values = session.run(names, feeds)
        for name, value in zip(names, values, strict=True):
            channel = numpy.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            maxima[name] = numpy.maximum(maxima[name], channel) if name in maxima else channel
    return maxima


def smooth(model: Any, products: list[Product], maxima: dict[str, Any], strength: float) -> None:
    """Step 1 of the module docstring, in place: a ``Mul`` by ``1 / s`` before each group of
    products and ``s`` folded into their weights' rows. ``products`` are updated to read
    the smoothed activation."""
    import numpy
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    for position, product in enumerate(products):
        matrices = [numpy_helper.to_array(weights[node.input[1]]) for node in product.nodes]
        weight_max = numpy.max([numpy.abs(matrix).max(axis=1) for matrix in matrices], axis=0)
        scale = (
            numpy.maximum(maxima[product.activation], _EPSILON) ** strength
            / numpy.maximum(weight_max, _EPSILON) ** (1 - strength)
        ).astype(numpy.float32)
        for node, matrix in zip(product.nodes, matrices, strict=True):
            scaled = (matrix * scale[:, None]).astype(numpy.float32)
            weights[node.input[1]].CopyFrom(numpy_helper.from_array(scaled, node.input[1]))
        smoothed = f"{product.activation}_smoothed"
        inverse = numpy_helper.from_array((1 / scale).astype(numpy.float32), f"{smoothed}_by")
        graph.initializer.append(inverse)
        first = min(list(graph.node).index(node) for node in product.nodes)
        graph.node.insert(
            first, helper.make_node("Mul", [product.activation, inverse.name], [smoothed])
        )
        for node in product.nodes:
            node.input[0] = smoothed
        products[position] = Product(smoothed, product.nodes)


def quantize_per_token(model: Any, products: list[Product]) -> int:
    """Step 2 of the module docstring, in place; the number of products rewritten. The
    float weights they no longer read are dropped."""
    import numpy
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    opset = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    shared: dict[str, Any] = {
        "levels": numpy.array(1 / _LEVELS, dtype=numpy.float32),
        "epsilon": numpy.array(_EPSILON, dtype=numpy.float32),
        "shift": numpy.array(128, dtype=numpy.float32),
        "zero": numpy.array(128, dtype=numpy.uint8),  # uint8 around 128: MLAS's u8 x s8 kernel
        "last": numpy.array([-1], dtype=numpy.int64),
    }
    for name, value in shared.items():
        graph.initializer.append(numpy_helper.from_array(value, f"token_q_{name}"))
    nodes = list(graph.node)
    rewritten = 0
    for product in products:
        x, q = product.activation, f"{product.activation}_q"
        # ReduceMax takes its axes as an attribute before opset 18, as an input from 18 on
        reduce = (
            helper.make_node("ReduceMax", [f"{q}_abs"], [f"{q}_max"], axes=[-1], keepdims=1)
            if opset < 18
            else helper.make_node("ReduceMax", [f"{q}_abs", "token_q_last"], [f"{q}_max"])
        )
        quantize = [
            helper.make_node("Abs", [x], [f"{q}_abs"]),
            reduce,
            helper.make_node("Max", [f"{q}_max", "token_q_epsilon"], [f"{q}_nonzero"]),
            helper.make_node("Mul", [f"{q}_nonzero", "token_q_levels"], [f"{q}_scale"]),
            helper.make_node("Div", [x, f"{q}_scale"], [f"{q}_steps"]),
            helper.make_node("Round", [f"{q}_steps"], [f"{q}_rounded"]),
            helper.make_node("Add", [f"{q}_rounded", "token_q_shift"], [f"{q}_shifted"]),
            helper.make_node("Cast", [f"{q}_shifted"], [q], to=TensorProto.UINT8),
        ]
        first = min(nodes.index(node) for node in product.nodes)
        nodes[first:first] = quantize
        for node in product.nodes:
            matrix = numpy_helper.to_array(weights[node.input[1]])
            column_scale = numpy.maximum(numpy.abs(matrix).max(axis=0), _EPSILON) / _LEVELS
            levels = numpy.clip(numpy.round(matrix / column_scale), -_LEVELS, _LEVELS)
            base = f"{node.input[1]}_int8"
            graph.initializer.append(numpy_helper.from_array(levels.astype(numpy.int8), base))
            graph.initializer.append(
                numpy_helper.from_array(column_scale.astype(numpy.float32), f"{base}_scale")
            )
            out = node.output[0]
            replacement = [
                helper.make_node("MatMulInteger", [q, base, "token_q_zero"], [f"{out}_int32"]),
                helper.make_node("Cast", [f"{out}_int32"], [f"{out}_float"], to=TensorProto.FLOAT),
                helper.make_node("Mul", [f"{out}_float", f"{q}_scale"], [f"{out}_rows"]),
                helper.make_node("Mul", [f"{out}_rows", f"{base}_scale"], [out]),
            ]
            at = nodes.index(node)
            nodes[at : at + 1] = replacement
            rewritten += 1
    del graph.node[:]
    graph.node.extend(nodes)
    read = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return rewritten
