"""The DFL softmax rewrite: the same numbers, a faster layout, and only where the pattern is exact."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from nexus.export.graph_rewrites import rewrite_dfl_softmax

BINS, ANCHORS = 16, 84


def dfl_graph(
    *,
    softmax_axis: int = 1,
    perm: tuple[int, ...] = (0, 2, 1, 3),
    conv_bias: bool = False,
    transposed_used_elsewhere: bool = False,
    scope: str = "/model.22/dfl/",
) -> onnx.ModelProto:
    """Ultralytics' DFL decode: (b, 64, A) -> (b, 4, 16, A) -> transpose -> softmax -> conv -> (b, 4, A)."""
    weight = numpy_helper.from_array(np.arange(BINS, dtype=np.float32).reshape(1, BINS, 1, 1), "dfl.weight")
    shape_in = numpy_helper.from_array(np.array([-1, 4, BINS, ANCHORS], np.int64), "shape_in")
    shape_out = numpy_helper.from_array(np.array([-1, 4, ANCHORS], np.int64), "shape_out")
    bias = numpy_helper.from_array(np.array([0.5], np.float32), "dfl.bias")
    nodes = [
        helper.make_node("Reshape", ["x", "shape_in"], ["r"], name=f"{scope}Reshape"),
        helper.make_node("Transpose", ["r"], ["t"], perm=list(perm), name=f"{scope}Transpose"),
        helper.make_node("Softmax", ["t"], ["s"], axis=softmax_axis, name=f"{scope}Softmax"),
        helper.make_node(
            "Conv",
            ["s", "dfl.weight", *(["dfl.bias"] if conv_bias else [])],
            ["c"],
            kernel_shape=[1, 1],
            name=f"{scope}conv/Conv",
        ),
        helper.make_node("Reshape", ["c", "shape_out"], ["y"], name=f"{scope}Reshape_1"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, ANCHORS])]
    if transposed_used_elsewhere:
        nodes.append(helper.make_node("Identity", ["t"], ["t_copy"], name="/other/Identity"))
        outputs.append(helper.make_tensor_value_info("t_copy", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes,
        "dfl",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4 * BINS, ANCHORS])],
        outputs,
        initializer=[weight, shape_in, shape_out, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


@pytest.mark.parametrize("batch", [1, 3])
def test_rewrite_gives_the_same_numbers_with_the_softmax_on_the_last_axis(batch):
    model = dfl_graph()
    x = np.random.default_rng(batch).normal(0, 3, (batch, 4 * BINS, ANCHORS)).astype(np.float32)
    expected = run(model, x)

    assert rewrite_dfl_softmax(model) is True
    onnx.checker.check_model(model, full_check=True)
    ops = [node.op_type for node in model.graph.node]
    assert "Conv" not in ops and "MatMul" in ops
    (softmax,) = [node for node in model.graph.node if node.op_type == "Softmax"]
    assert helper.get_attribute_value(softmax.attribute[0]) == -1
    assert all("/dfl/" in node.name for node in model.graph.node)  # INT8 export keeps /dfl/ in float
    assert "dfl.weight" not in {init.name for init in model.graph.initializer}
    np.testing.assert_allclose(run(model, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "variant",
    [
        {"softmax_axis": -1},
        {"perm": (0, 1, 3, 2)},
        {"conv_bias": True},
        {"transposed_used_elsewhere": True},
        {"scope": "/model.22/other/"},
    ],
    ids=["softmax-already-last", "other-transpose", "conv-with-bias", "shared-tensor", "not-dfl"],
)
def test_rewrite_leaves_other_graphs_untouched(variant):
    model = dfl_graph(**variant)
    before = model.SerializeToString()
    assert rewrite_dfl_softmax(model) is False
    assert model.SerializeToString() == before


def test_our_export_carries_the_rewrite_and_keeps_ultralytics_output_layout(detect_onnx):
    """(Detections equal Ultralytics predict on this export: tests/inference parity tests.)"""
    model = onnx.load(str(detect_onnx))
    dfl = [node for node in model.graph.node if "/dfl/" in node.name]
    assert any(node.op_type == "MatMul" for node in dfl)
    assert not any(node.op_type == "Conv" for node in dfl)
    (output,) = model.graph.output
    dims = [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim]
    assert dims[0] == "batch" and dims[2] == "anchors" and dims[1] == 4 + 3  # boxes + 3 shape classes
