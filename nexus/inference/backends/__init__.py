"""Inference backends: each turns a preprocessed ``(B, 3, H, W)`` batch into raw head outputs.

The ONNX Runtime backend imports neither torch nor Ultralytics, so the CPU serving path stays slim.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from nexus.inference.metadata import ModelMetadata


class InferenceBackend(Protocol):
    """The contract every backend fulfils.

    Attributes:
        metadata: names, input size, stride, task of the loaded model.
        input_dtype: dtype the backend wants its batch in (float32 or float16).
        dynamic_shape: whether inputs of other spatial sizes than ``metadata.imgsz`` are accepted.
        name: a short label for logs and metrics (``onnxruntime:CPUExecutionProvider``).
    """

    metadata: ModelMetadata
    input_dtype: type
    dynamic_shape: bool
    name: str

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Run the model; returns ``(predictions (B, 4+nc+nm, A), prototypes (B, nm, mh, mw) or None)``."""
        ...
