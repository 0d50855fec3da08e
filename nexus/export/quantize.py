"""INT8 static quantization (QDQ), per channel, calibrated on dataset images.

Quantizing the whole graph destroys accuracy: the detection head concatenates box pixels and class
scores under one scale. The backbone and neck are quantized (convolutions per channel, and their
SiLU activations, residual adds, concats, pooling and upsampling, so ONNX Runtime runs them as
integer kernels end to end); in the head only the inner convolutions are, while each branch's last
convolution and the whole decode (DFL, anchors, sigmoid, concat) stay in float.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from nexus.errors import ExportError
from nexus.export.onnx_export import read_onnx_metadata, write_onnx_metadata
from nexus.inference.metadata import ModelMetadata
from nexus.vision.image_io import load_image
from nexus.vision.letterbox import letterbox_batch


class _LetterboxCalibrationReader:
    """Feeds calibration images, letterboxed like inference, one at a time."""

    def __init__(self, images: Sequence[Path], input_name: str, imgsz: tuple[int, int]) -> None:
        self._images = list(images)
        self._input_name = input_name
        self._imgsz = imgsz
        self._index = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._index >= len(self._images):
            return None
        image = load_image(self._images[self._index])
        self._index += 1
        batch, _ = letterbox_batch([image], self._imgsz)
        return {self._input_name: batch}

    def rewind(self) -> None:
        self._index = 0


_HEAD_OUTPUT_CONV = re.compile(r"/cv\d\.\d+/cv\d\.\d+\.2/Conv$")


QUANTIZED_OP_TYPES = ["Conv", "Mul", "Sigmoid", "Add", "Concat", "MaxPool", "Resize", "Split"]
_LAYER = re.compile(r"^/model\.(\d+)/")


def head_prefix(model: onnx.ModelProto) -> str | None:
    """``/model.N/`` of the last layer (the Detect/Segment head) in Ultralytics' node naming."""
    layers = [int(m.group(1)) for n in model.graph.node if (m := _LAYER.match(n.name))]
    return f"/model.{max(layers)}/" if layers else None


def float_only_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of nodes kept in float: the head's last convolution of each branch (box distribution,
    class logits, mask coefficients), whose outputs feed the decode, and the DFL box decode itself.

    Quantizing those outputs puts box offsets and class logits on a coarse 8-bit grid right before
    the decode; they are 1x1 convolutions with few channels, so keeping them float costs little.
    """
    return [
        node.name
        for node in model.graph.node
        if "/dfl/" in node.name.lower() or (node.op_type == "Conv" and _HEAD_OUTPUT_CONV.search(node.name))
    ]


def nodes_to_keep_float(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """``(op types to quantize, node names to exclude)`` for ``model``.

    With Ultralytics' node names the body is quantized fully and the head's decode is excluded;
    for graphs named otherwise only convolutions are quantized (safe everywhere).
    """
    prefix = head_prefix(model)
    if prefix is None:
        return ["Conv"], float_only_nodes(model)
    kept = set(float_only_nodes(model))
    head = {n.name for n in model.graph.node if n.name.startswith(prefix) and n.op_type != "Conv"}
    return QUANTIZED_OP_TYPES, sorted(kept | head)


def quantize_onnx_int8(
    onnx_path: str | Path,
    out_path: str | Path,
    calibration_images: Sequence[str | Path],
    imgsz: int | None = None,
    per_channel: bool = True,
) -> Path:
    """Write an INT8 (QDQ) copy of an FP32 ONNX detection model.

    Args:
        onnx_path: the FP32 model (from ``export_onnx``).
        out_path: where to write the INT8 model.
        calibration_images: representative images (e.g. a dataset's train split); 32–200 is plenty.
        imgsz: calibration input size; the model's own when omitted.
        per_channel: per-output-channel weight scales (more accurate, same speed).

    Example:
        >>> quantize_onnx_int8("model.onnx", "model-int8.onnx", images[:64])  # doctest: +SKIP
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration_images:
        raise ExportError("INT8 quantization needs calibration images; pass a dataset with images")
    metadata = read_onnx_metadata(onnx_path)
    size = (imgsz, imgsz) if imgsz else metadata.imgsz
    with tempfile.TemporaryDirectory(prefix="nexus-int8-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        input_name = model.graph.input[0].name
        reader = _LetterboxCalibrationReader([Path(p) for p in calibration_images], input_name, size)
        quantized = Path(scratch) / "int8.onnx"
        op_types, excluded = nodes_to_keep_float(model)
        quantize_static(
            str(prepared),
            str(quantized),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=op_types,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        result = onnx.load(str(quantized))
    write_onnx_metadata(result, ModelMetadata(**{**metadata.to_dict(), "precision": "int8"}))
    onnx.save(result, str(out_path))
    return Path(out_path)
