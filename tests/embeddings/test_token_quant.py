"""Smoothing and per-token int8 products, on a small graph built here (the real build is in
test_int8_build.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from helios.embeddings.token_quant import (
    Product,
    quantizable_products,
    quantize_per_token,
    smooth,
)

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
WIDTH, HIDDEN = 16, 32


def two_layer_graph() -> Any:
    """x -> MatMul(W1) -> BiasGelu -> MatMul(W2), with an outlier channel in x's use."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    weights = {
        "w1": rng.standard_normal((WIDTH, HIDDEN)).astype(np.float32) / 4,
        "bias": rng.standard_normal(HIDDEN).astype(np.float32) / 10,
        "w2": rng.standard_normal((HIDDEN, WIDTH)).astype(np.float32) / 4,
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("BiasGelu", ["h", "bias"], ["g"], domain="com.microsoft"),
        helper.make_node("MatMul", ["g", "w2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "two layers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", WIDTH])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets)


def run(model: Any, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (y,) = session.run(None, {"x": x})
    return np.asarray(y)


def inputs(rows: int) -> np.ndarray[Any, Any]:
    x = np.random.default_rng(11).standard_normal((rows, WIDTH)).astype(np.float32)
    x[:, 3] *= 40  # one outlier channel, as BERT's layer norms produce
    return x


def test_products_fed_by_a_gelu_stay_in_float() -> None:
    (product,) = quantizable_products(two_layer_graph())
    assert product.activation == "x"
    assert [node.input[1] for node in product.nodes] == ["w1"]


def smoothed_graph(x: np.ndarray[Any, Any]) -> tuple[Any, list[Product], np.ndarray[Any, Any]]:
    """The graph smoothed for ``x``'s channel maxima, its products, and its float output
    for ``x`` before smoothing."""
    model = two_layer_graph()
    expected = run(model, x)
    products = quantizable_products(model)
    smooth(model, products, {"x": np.abs(x).max(axis=0)}, 0.7)
    return model, products, expected


def test_smoothing_leaves_the_float_product_unchanged() -> None:
    x = inputs(6)
    model, products, expected = smoothed_graph(x)

    np.testing.assert_allclose(run(model, x), expected, rtol=1e-4, atol=1e-4)
    assert products[0].activation == "x_smoothed"


def test_per_token_products_stay_close_and_no_row_moves_another() -> None:
    x = inputs(6)
    model, products, expected = smoothed_graph(x)

    assert quantize_per_token(model, products) == 1

    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["MatMulInteger"] == 1 and ops["MatMul"] == 1  # W2, after the GELU
    assert "w1" not in {init.name for init in model.graph.initializer}  # float copy dropped
    quantized = run(model, x)
    error = np.linalg.norm(quantized - expected) / np.linalg.norm(expected)
    assert error < 0.02
    # a row a thousand times louder beside it changes nothing: one scale per row
    loud = np.vstack([x[:1], x[1:2] * 1000])
    np.testing.assert_array_equal(run(model, loud)[0], run(model, x[:1])[0])
