"""The int8 lookup tables of the packaged MiniLM stay int8 in its build (a small graph here;
the real build is in test_int8_build.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from helios.embeddings.lookup_tables import gather_before_dequantising

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
ROWS, WIDTH = 50, 8


def dequantised_table_graph(*, shared: bool = False) -> Any:
    """ids -> Gather(Mul(Cast(int8 table), per-row scale)), as the packaged graph has it;
    ``shared``: the float table is also an output (read twice)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    table = rng.integers(-127, 128, (ROWS, WIDTH)).astype(np.int8)
    scale = rng.uniform(0.001, 0.05, (ROWS, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Cast", ["table_q"], ["table_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["table_f", "table_scale"], ["table"]),
        helper.make_node("Gather", ["table", "ids"], ["rows"]),
    ]
    outputs = [helper.make_tensor_value_info("rows", TensorProto.FLOAT, None)]
    if shared:
        outputs.append(helper.make_tensor_value_info("table", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes,
        "lookup",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, None])],
        outputs,
        [numpy_helper.from_array(table, "table_q"), numpy_helper.from_array(scale, "table_scale")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def rows_of(model: Any, ids: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return np.asarray(session.run(["rows"], {"ids": ids})[0])


def test_rows_are_gathered_in_int8_then_scaled_with_the_same_values() -> None:
    model = dequantised_table_graph()
    ids = np.array([[0, 7, 49, 7]], dtype=np.int64)
    expected = rows_of(model, ids)

    assert gather_before_dequantising(model) == 1

    np.testing.assert_array_equal(rows_of(model, ids), expected)
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops == Counter({"Gather": 2, "Cast": 1, "Mul": 1})
    (cast,) = [node for node in model.graph.node if node.op_type == "Cast"]
    assert cast.input[0] != "table_q"  # the cast reads the gathered rows, not the table


def test_a_float_table_read_elsewhere_is_left_as_it_is() -> None:
    model = dequantised_table_graph(shared=True)
    before = model.SerializeToString()

    assert gather_before_dequantising(model) == 0
    assert model.SerializeToString() == before
