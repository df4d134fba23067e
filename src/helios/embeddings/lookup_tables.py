"""Keep the packaged MiniLM's lookup tables in int8: gather the rows first, then dequantise.

The packaged graph stores its word and position embeddings as int8 with a scale per row,
cast to float and scaled before the ``Gather`` that picks a text's rows; folding those casts
(the int8 build's first step) would turn the 30,522 x 384 word table into 47 MB of floats
in every session. Gathering the int8 rows and their scales first, then casting and scaling
only those, gives bit for bit the same values (the same multiplication on the same
operands) from a table of 12 MB. Only used at build time, in the child process of
:mod:`helios.embeddings.int8_build`.
"""

from __future__ import annotations

from typing import Any

_INT8 = 3
"""``onnx.TensorProto.INT8``."""


def gather_before_dequantising(model: Any) -> int:
    """Rewrite, in place, every ``Gather(Mul(Cast(int8 table), scale), ids)`` of ``model``
    to ``Mul(Cast(Gather(table, ids)), Gather(scale, ids))``; the number rewritten."""
    from onnx import TensorProto, helper

    graph = model.graph
    tables = {init.name: init for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    readers: dict[str, int] = {}
    for name in [name for node in graph.node for name in node.input] + [
        output.name for output in graph.output
    ]:
        readers[name] = readers.get(name, 0) + 1
    nodes = list(graph.node)
    rewritten = 0
    for gather in [node for node in nodes if node.op_type == "Gather"]:
        if any(attribute.name == "axis" and attribute.i != 0 for attribute in gather.attribute):
            continue
        scaled = producers.get(gather.input[0])
        if scaled is None or scaled.op_type != "Mul" or readers[gather.input[0]] != 1:
            continue
        cast = producers.get(scaled.input[0])
        scale = tables.get(scaled.input[1])
        if cast is None or cast.op_type != "Cast" or scale is None:
            continue
        table = tables.get(cast.input[0])
        if table is None or table.data_type != _INT8 or len(table.dims) != 2:
            continue
        if list(scale.dims) != [table.dims[0], 1] or readers[scaled.input[0]] != 1:
            continue
        ids, out = gather.input[1], gather.output[0]
        replacement = [
            helper.make_node("Gather", [table.name, ids], [f"{out}_int8"], axis=0),
            helper.make_node("Cast", [f"{out}_int8"], [f"{out}_float"], to=TensorProto.FLOAT),
            helper.make_node("Gather", [scale.name, ids], [f"{out}_scale"], axis=0),
            helper.make_node("Mul", [f"{out}_float", f"{out}_scale"], [out]),
        ]
        at = nodes.index(gather)
        nodes[at : at + 1] = replacement
        nodes.remove(scaled)
        nodes.remove(cast)
        rewritten += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return rewritten
