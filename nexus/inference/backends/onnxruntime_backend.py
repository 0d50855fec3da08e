"""ONNX Runtime backend (CPU; CUDA and TensorRT execution providers when installed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nexus.errors import ModelLoadError
from nexus.inference.metadata import ModelMetadata

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import onnxruntime as ort

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def select_providers(device: str = "cpu") -> list[str]:
    """Execution providers for ``device``: GPU ones first when asked for and installed, CPU last."""
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    chosen = [p for p in _GPU_PROVIDERS if p in available]
    if not chosen:
        raise ModelLoadError(
            f"device {device!r} needs onnxruntime-gpu (CUDA/TensorRT providers); installed providers are "
            f"{', '.join(available)}; pass --device cpu"
        )
    return [*chosen, "CPUExecutionProvider"]


class OnnxRuntimeBackend:
    """Runs an ONNX detection/segmentation model exported by us or by Ultralytics.

    Example:
        >>> backend = OnnxRuntimeBackend("model.onnx")  # doctest: +SKIP
        >>> predictions, protos = backend.infer(np.zeros((1, 3, 160, 160), np.float32))  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, device: str = "cpu", intra_op_threads: int | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError("no such model file", path=path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=select_providers(device))
        except ModelLoadError:
            raise
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            first_line = (
                str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            )
            raise ModelLoadError(f"not a loadable ONNX model ({first_line})", path=path) from error
        properties = self.session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_onnx_properties(properties)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
        self.dynamic_shape = any(not isinstance(dim, int) for dim in model_input.shape[2:])
        batch_dim = model_input.shape[0]
        self.max_batch = batch_dim if isinstance(batch_dim, int) else None
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.name = f"onnxruntime:{self.session.get_providers()[0]}"

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.max_batch is not None and len(batch) != self.max_batch:
            outputs = [self._run(batch[i : i + 1]) for i in range(len(batch))]
            predictions = np.concatenate([o[0] for o in outputs])
            protos = None if outputs[0][1] is None else np.concatenate([o[1] for o in outputs])
            return predictions, protos
        return self._run(batch)

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = self.session.run(
            self.output_names, {self.input_name: batch.astype(self.input_dtype, copy=False)}
        )
        predictions = outputs[0].astype(np.float32, copy=False)
        protos = outputs[1].astype(np.float32, copy=False) if len(outputs) > 1 else None
        return predictions, protos
