from __future__ import annotations

import importlib.util
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from nexus.errors import ExportError, ModelLoadError
from nexus.export import ExportConfig, export_model
from nexus.export.onnx_export import read_onnx_metadata
from nexus.export.quantize import float_only_nodes, head_prefix
from nexus.export.tensorrt_engine import (
    EngineStamp,
    check_engine_stamp,
    read_stamped_engine,
    write_stamped_engine,
)
from nexus.inference.detector import Detector
from nexus.vision.nms import box_iou

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def exported(detect_weights, sample_dataset, tmp_path_factory):
    config = ExportConfig(
        weights=detect_weights,
        out_dir=tmp_path_factory.mktemp("exported"),
        formats=("onnx", "fp16", "int8"),
        data=sample_dataset,
        calibration_images=16,
    )
    return export_model(config).files


def test_onnx_has_metadata_and_dynamic_batch(exported, detect_weights):
    metadata = read_onnx_metadata(exported["onnx"])
    assert metadata.names == Detector.from_path(detect_weights).names
    assert metadata.imgsz == (96, 96) and metadata.stride == 32 and metadata.task == "detect"
    assert metadata.preprocessing["pad_value"] == 114 and metadata.preprocessing["color"] == "RGB"
    properties = {p.key: p.value for p in onnx.load(str(exported["onnx"])).metadata_props}
    assert json.loads(properties["nexus_preprocessing"])["letterbox"] is True
    session = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"images": np.zeros((3, 3, 96, 96), np.float32)})
    assert outputs[0].shape[0] == 3


def matched_fraction(reference, candidate, iou=0.8):
    if not len(reference):
        return 1.0
    if not len(candidate):
        return 0.0
    overlap = box_iou(reference.xyxy, candidate.xyxy)
    same_class = reference.class_id[:, None] == candidate.class_id[None, :]
    return float(((overlap > iou) & same_class).any(axis=1).mean())


@pytest.mark.parametrize(
    ("variant", "precision", "min_match"), [("fp16", "fp16", 0.95), ("int8", "int8", 0.6)]
)
def test_reduced_precision_models_stay_close_to_fp32(exported, val_images, variant, precision, min_match):
    reference = Detector.from_path(exported["onnx"])
    candidate = Detector.from_path(exported[variant])
    assert candidate.metadata.precision == precision
    fractions = []
    for path in val_images:
        expected = reference.predict(str(path), conf=0.05)[0]
        fractions.append(matched_fraction(expected, candidate.predict(str(path), conf=0.04)[0]))
    assert np.mean(fractions) >= min_match


def test_int8_quantizes_the_body_and_keeps_the_head_outputs_and_decode_float(exported):
    graph = onnx.load(str(exported["int8"])).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantized = {i for n in graph.node if n.op_type == "QuantizeLinear" for i in n.input}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    kept_float = set(float_only_nodes(onnx.load(str(exported["onnx"]))))
    # The DFL's 1x1 convolution is a MatMul in our exports (nexus.export.graph_rewrites).
    head = [n for n in graph.node if n.op_type in {"Conv", "MatMul"} and n.name in kept_float]
    assert any("/dfl/" in n.name for n in head) and len(head) >= 7  # DFL + (box, class) x 3 strides
    for node in head:
        assert node.input[1] not in dequantized, f"{node.name} has quantized weights"
        assert node.output[0] not in quantized, f"{node.name} output is quantized"
    body = [n for n in convs if n.name not in kept_float]
    assert sum(n.input[1] in dequantized for n in body) == len(body), "every other conv is INT8"
    prefix = head_prefix(graph_model := onnx.load(str(exported["onnx"])))
    decode = [  # the head's nodes after its conv branches: DFL, anchors, sigmoid, concat
        n
        for n in graph_model.graph.node
        if n.name.startswith(prefix) and not n.name[len(prefix) :].startswith("cv")
    ]
    assert decode, "the head's decode nodes should exist"
    for node in (n for n in graph.node if n.name in {d.name for d in decode}):
        assert not set(node.output) & quantized, f"decode node {node.name} output is quantized"
    activations = [n for n in graph.node if n.op_type == "Sigmoid" and not n.name.startswith(prefix)]
    assert activations and all(n.input[0] in dequantized for n in activations), "body SiLU runs on INT8"
    assert not any(
        n.op_type == "QuantizeLinear" for n in graph.node if set(n.input) & {o.name for o in graph.output}
    )


def test_int8_needs_calibration_data(detect_weights, tmp_path):
    with pytest.raises(ExportError, match="--data"):
        ExportConfig(weights=detect_weights, out_dir=tmp_path, formats=("int8",))


@pytest.mark.parametrize("data", ["missing", "empty"])
def test_bad_calibration_data_fails_before_anything_is_replaced(detect_weights, tmp_path, capsys, data):
    from nexus.cli.main import main

    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"the model already deployed")
    folder = tmp_path / data
    if data == "empty":
        folder.mkdir()
    argv = ["export", str(detect_weights), "-o", str(out), "--int8", "--data", str(folder)]
    assert main(argv) == 2
    assert str(folder) in capsys.readouterr().err
    assert (out / "model.onnx").read_bytes() == b"the model already deployed"


def test_unknown_format_is_rejected(detect_weights, tmp_path):
    with pytest.raises(ExportError, match="unknown export format"):
        ExportConfig(weights=detect_weights, out_dir=tmp_path, formats=("tflite",))


@pytest.mark.skipif(
    HAS_TENSORRT, reason="TensorRT is installed here; the absent-TensorRT message is not reachable"
)
def test_engine_export_without_tensorrt_fails_fast_with_a_clear_message(detect_weights, tmp_path):
    with pytest.raises(ExportError, match="TensorRT is not installed"):
        export_model(ExportConfig(weights=detect_weights, out_dir=tmp_path / "out", formats=("engine",)))
    assert not (tmp_path / "out").exists(), "nothing should be written before the check"


def test_engine_stamp_round_trip_and_mismatch(tmp_path, detect_onnx):
    built = EngineStamp("NVIDIA H100 80GB HBM3", "9.0", "10.3.0", "12.4")
    path = write_stamped_engine(tmp_path / "m.engine", b"\x00engine", built, read_onnx_metadata(detect_onnx))
    stamp, metadata, engine = read_stamped_engine(path)
    assert stamp == built and engine == b"\x00engine" and metadata.task == "detect"
    check_engine_stamp(path, stamp, built)
    running = EngineStamp("NVIDIA H200", "9.0", "10.5.0", "12.4")
    with pytest.raises(ModelLoadError) as error:
        check_engine_stamp(path, stamp, running)
    message = str(error.value)
    assert "NVIDIA H100 80GB HBM3" in message and "NVIDIA H200" in message and "10.5.0" in message
    assert "cuda version" not in message


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TENSORRT, reason="needs TensorRT and a CUDA GPU")
def test_engine_builds_and_matches_onnx(detect_weights, tmp_path, val_images):
    files = export_model(ExportConfig(weights=detect_weights, out_dir=tmp_path, formats=("engine",))).files
    engine = Detector.from_path(files["engine"], device="0")
    onnx_detector = Detector.from_path(files["onnx"])
    for path in val_images[:4]:
        expected = onnx_detector.predict(str(path), conf=0.05)[0]
        assert matched_fraction(expected, engine.predict(str(path), conf=0.04)[0]) > 0.9
