"""ONNX export of Ultralytics weights: dynamic batch, onnxslim, metadata embedded, FP16 variant."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import onnx

from nexus.errors import ExportError, ModelLoadError
from nexus.export.graph_rewrites import rewrite_dfl_softmax
from nexus.inference.metadata import ModelMetadata
from nexus.offline import ensure_offline

ONNX_OPSET = 17


def read_onnx_metadata(path: str | Path) -> ModelMetadata:
    """The ``ModelMetadata`` embedded in an ONNX file (ours or Ultralytics')."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise ModelLoadError(f"not an ONNX model ({type(error).__name__})", path=path) from error
    return ModelMetadata.from_onnx_properties({p.key: p.value for p in model.metadata_props})


def write_onnx_metadata(model: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Replace the model's metadata properties with ``metadata``'s."""
    del model.metadata_props[:]
    for key, value in sorted(metadata.to_onnx_properties().items()):
        model.metadata_props.add(key=key, value=value)


def export_onnx(weights: str | Path, out_path: str | Path, imgsz: int | None = None) -> Path:
    """Export Ultralytics ``.pt`` weights to ONNX (opset 17, dynamic batch and size, slimmed).

    Args:
        weights: a ``.pt`` checkpoint (trained here or supplied by the user).
        out_path: where to write the ``.onnx`` file.
        imgsz: input size to record as the model's default; the checkpoint's training size when omitted.

    Example:
        >>> export_onnx("runs/train/weights/best.pt", "model.onnx")  # doctest: +SKIP
        PosixPath('model.onnx')
    """
    from nexus.inference.backends.torch_backend import load_ultralytics_checkpoint

    weights, out_path = Path(weights), Path(out_path)
    load_ultralytics_checkpoint(weights)  # clear error for a missing file or a non-checkpoint
    ensure_offline()
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory(prefix="nexus-export-") as scratch:
        staged = Path(scratch) / "model.pt"
        shutil.copyfile(weights, staged)
        kwargs = {"imgsz": imgsz} if imgsz else {}
        try:
            exported = YOLO(str(staged)).export(
                format="onnx", dynamic=True, simplify=True, opset=ONNX_OPSET, verbose=False, **kwargs
            )
        except Exception as error:
            raise ExportError(f"ONNX export failed: {type(error).__name__}: {error}", path=weights) from error
        model = onnx.load(str(exported))
    rewrite_dfl_softmax(model)
    metadata = ModelMetadata.from_onnx_properties({p.key: p.value for p in model.metadata_props})
    write_onnx_metadata(model, metadata)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    return out_path


def convert_onnx_fp16(onnx_path: str | Path, out_path: str | Path) -> Path:
    """Convert weights and activations to FP16, keeping FP32 inputs/outputs for callers."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(onnx_path))
    metadata = read_onnx_metadata(onnx_path)
    half = convert_float_to_float16(model, keep_io_types=True)
    write_onnx_metadata(half, ModelMetadata(**{**metadata.to_dict(), "precision": "fp16"}))
    onnx.save(half, str(out_path))
    return Path(out_path)
