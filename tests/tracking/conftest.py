"""Tracking fixtures: synthetic sequences and a tiny re-id ONNX model built with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nexus.tracking import SyntheticMOTConfig, SyntheticMOTSequence, generate_mot_sequence


def build_color_reid_onnx(path: Path, dim: int = 8, size: tuple[int, int] = (32, 64), seed: int = 0) -> Path:
    """A re-id model: ``(N, 3, H, W)`` -> global average pool -> fixed random ``3 x dim`` projection."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(3, dim)).astype(np.float32)
    bias = rng.normal(size=(dim,)).astype(np.float32)
    width, height = size
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "weight"], ["projected"]),
            helper.make_node("Add", ["projected", "bias"], ["features"]),
        ],
        "color_reid",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, height, width])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", dim])],
        [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def reid_onnx(tmp_path_factory) -> Path:
    return build_color_reid_onnx(tmp_path_factory.mktemp("reid") / "color_reid.onnx")


@pytest.fixture(scope="session")
def easy_sequence() -> SyntheticMOTSequence:
    """Ten objects, 120 frames, 5% misses, false positives, short occlusions, births and deaths."""
    config = SyntheticMOTConfig(
        frames=120, objects=10, width=320, height=240, box_size=(16, 40), max_speed=2.0,
        occlusion_rate=0.01, occlusion_length=4, seed=1,
    )  # fmt: skip
    return generate_mot_sequence(config)
