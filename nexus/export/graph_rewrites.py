"""Exact ONNX graph rewrites that make exported detectors faster under ONNX Runtime on CPU.

Ultralytics exports the distribution-focal-loss (DFL) box decode as
``Reshape(b,4,16,A) -> Transpose(0,2,1,3) -> Softmax(axis=1) -> Conv1x1(16->1)``. ONNX Runtime's
Softmax over a non-last axis transposes internally and is slow: at 640 px it is about a sixth of an
INT8 model's run time. The same numbers come out of ``Transpose(0,1,3,2) -> Softmax(axis=-1) ->
MatMul(16x1)``, which runs several times faster.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _attribute(node: onnx.NodeProto, name: str) -> onnx.AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def rewrite_dfl_softmax(model: onnx.ModelProto) -> bool:
    """Move the DFL softmax to the last axis and turn its 1x1 convolution into a MatMul, in place.

    Node names keep their ``/dfl/`` scope, so INT8 quantization still leaves the decode in float.

    Args:
        model: an Ultralytics detection/segmentation export.

    Returns:
        Whether the pattern was found and rewritten (False leaves the model untouched).

    Example:
        >>> model = onnx.load("model.onnx")  # doctest: +SKIP
        >>> rewrite_dfl_softmax(model)  # doctest: +SKIP
        True
    """
    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}
    initializers = {init.name: init for init in graph.initializer}
    for softmax in graph.node:
        if softmax.op_type != "Softmax" or "/dfl/" not in softmax.name:
            continue
        axis = _attribute(softmax, "axis")
        transpose = producer.get(softmax.input[0])
        consumers = [node for node in graph.node if softmax.output[0] in node.input]
        if axis is None or axis.i != 1 or transpose is None or transpose.op_type != "Transpose":
            continue
        perm = _attribute(transpose, "perm")
        if perm is None or list(perm.ints) != [0, 2, 1, 3] or len(consumers) != 1:
            continue
        conv = consumers[0]
        if conv.op_type != "Conv" or len(conv.input) != 2 or conv.input[1] not in initializers:
            continue
        weight = numpy_helper.to_array(initializers[conv.input[1]])
        if weight.ndim != 4 or weight.shape[0] != 1 or weight.shape[2:] != (1, 1):
            continue
        if any(softmax.input[0] in node.input for node in graph.node if node is not softmax):
            continue  # the transposed tensor is used elsewhere: changing its layout would break that

        perm.ints[:] = [0, 1, 3, 2]
        axis.i = -1
        matmul_weight = f"{conv.input[1]}_as_matmul"
        graph.initializer.append(
            numpy_helper.from_array(np.ascontiguousarray(weight.reshape(weight.shape[1], 1)), matmul_weight)
        )
        matmul = helper.make_node(
            "MatMul", [softmax.output[0], matmul_weight], list(conv.output), name=conv.name + "_as_matmul"
        )
        index = list(graph.node).index(conv)
        graph.node.remove(conv)
        graph.node.insert(index, matmul)
        if not any(conv.input[1] in node.input for node in graph.node):
            graph.initializer.remove(initializers[conv.input[1]])
        # Shapes recorded for the re-laid-out tensors are stale now; let shape inference redo them.
        stale = {transpose.output[0], softmax.output[0], *conv.output}
        kept = [info for info in graph.value_info if info.name not in stale]
        del graph.value_info[:]
        graph.value_info.extend(kept)
        return True
    return False
