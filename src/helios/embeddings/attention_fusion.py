"""Fuse the packaged MiniLM's attention into one ``MultiHeadAttention`` operator per layer.

The packaged graph was exported from PyTorch's scaled-dot-product attention, a shape
onnxruntime's own BERT fusions do not recognise ("failed to match qk path"): each layer
keeps about 60 small operators (reshapes, transposes, shape arithmetic, the mask built with
``Where``, a NaN guard after the softmax), and on two cores each costs a thread wake-up.
This rewrites, per layer, everything between the three projections (Q, K and V after their
bias ``Add``) and the output projection's input into onnxruntime's
``com.microsoft.MultiHeadAttention`` with the attention mask as key padding mask:
400 operators become 141, the same vectors (cosine 1.00000 to the unfused graph, padded
batches included), about 0.4 ms less per short question (bench/README.md).

The pattern is checked whole before anything changes: on a graph of another shape nothing
is rewritten and the build goes on unfused. Only used at build time, in the child process
of :mod:`helios.embeddings.int8_build`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MASK = "attention_mask_int32"
"""The attention mask as ``MultiHeadAttention`` wants its key padding mask (int32)."""


@dataclass(frozen=True, slots=True)
class _Layer:
    query: str
    key: str
    value: str
    output: Any
    """The node whose output the fused operator takes over (the heads merged back)."""


def fuse_attention(model: Any, *, heads: int, head_size: int) -> int:
    """Rewrite every layer's attention of ``model`` (an ``onnx.ModelProto``) in place;
    the number of layers fused, 0 when the graph is not of the expected shape."""
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.transformers.onnx_model import OnnxModel  # type: ignore[import-untyped]

    graph = model.graph
    if "attention_mask" not in {value.name for value in graph.input}:
        return 0
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    layers = _match(list(graph.node), constants, head_size)
    if not layers:
        return 0
    graph.node.append(
        helper.make_node(
            "Cast", ["attention_mask"], [MASK], to=TensorProto.INT32, name="attention_mask_cast"
        )
    )
    for number, layer in enumerate(layers):
        merged = layer.output.output[0]
        layer.output.output[0] = f"{merged}_unfused"  # left without readers: pruned below
        graph.node.append(
            helper.make_node(
                "MultiHeadAttention",
                [layer.query, layer.key, layer.value, "", MASK],
                [merged],
                domain="com.microsoft",
                num_heads=heads,
                name=f"attention_{number}",
            )
        )
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    wrapped = OnnxModel(model)
    wrapped.prune_graph()
    wrapped.topological_sort()
    return len(layers)


def _match(nodes: list[Any], constants: dict[str, Any], head_size: int) -> list[_Layer]:
    """Each softmax's layer, or ``[]`` if any one of them is not of the expected shape."""
    producer = {output: node for node in nodes for output in node.output}
    readers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def projection(name: str) -> str | None:
        """Up through reshapes and transposes to the projection's bias ``Add``."""
        node = producer.get(name)
        while node is not None and node.op_type in ("Reshape", "Transpose"):
            node = producer.get(node.input[0])
        return node.output[0] if node is not None and node.op_type == "Add" else None

    def scaled(node: Any) -> tuple[str, float] | None:
        """A ``Mul`` by a constant: what it scales and by how much."""
        if node is None or node.op_type != "Mul":
            return None
        factors = [name for name in node.input if name in constants]
        others = [name for name in node.input if name not in constants]
        if len(factors) != 1 or len(others) != 1 or constants[factors[0]].size != 1:
            return None
        return others[0], float(constants[factors[0]])

    def only_reader(name: str, op_type: str) -> Any:
        found = [node for node in readers.get(name, []) if node.op_type == op_type]
        return found[0] if len(found) == 1 else None

    layers = []
    for softmax in (node for node in nodes if node.op_type == "Softmax"):
        scores = producer.get(softmax.input[0])
        if scores is None or scores.op_type != "Add":
            return []
        product = next(
            (
                producer[i]
                for i in scores.input
                if i in producer and producer[i].op_type == "MatMul"
            ),
            None,
        )
        if product is None:
            return []
        query_side = scaled(producer.get(product.input[0]))
        key_side = scaled(producer.get(product.input[1]))
        if query_side is None or key_side is None:
            return []
        # MultiHeadAttention scales by 1/sqrt(head size): the graph must do the same
        if abs(query_side[1] * key_side[1] - head_size**-0.5) > 1e-6:
            return []
        guard = only_reader(softmax.output[0], "Where")  # the NaN guard of the export
        weighted = only_reader(guard.output[0], "MatMul") if guard is not None else None
        heads_first = only_reader(weighted.output[0], "Transpose") if weighted else None
        merged = only_reader(heads_first.output[0], "Reshape") if heads_first else None
        query, key = projection(query_side[0]), projection(key_side[0])
        value = projection(weighted.input[1]) if weighted is not None else None
        if merged is None or query is None or key is None or value is None:
            return []
        layers.append(_Layer(query, key, value, merged))
    return layers
