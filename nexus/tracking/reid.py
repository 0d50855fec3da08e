"""Appearance embedders for re-identification: a protocol and an ONNX Runtime implementation."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from nexus.errors import ModelLoadError


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns image crops into appearance vectors.

    ``embed(image, xyxy)`` takes a BGR frame and ``(N, 4)`` boxes and returns ``(N, D)`` float32
    vectors, L2-normalized (cosine distance = 1 - dot product).
    """

    def embed(self, image: np.ndarray, xyxy: np.ndarray) -> np.ndarray: ...


def crop_batch(image: np.ndarray, xyxy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop boxes (clipped to the image) and resize each to ``size`` = (width, height) -> ``(N, H, W, 3)``."""
    height, width = image.shape[:2]
    out = np.zeros((len(xyxy), size[1], size[0], 3), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(xyxy, dtype=np.float64)):
        left, top = int(np.clip(np.floor(x1), 0, width - 1)), int(np.clip(np.floor(y1), 0, height - 1))
        right, bottom = int(np.clip(np.ceil(x2), left + 1, width)), int(np.clip(np.ceil(y2), top + 1, height))
        out[i] = cv2.resize(image[top:bottom, left:right], size, interpolation=cv2.INTER_LINEAR)
    return out


class OnnxReIdEmbedder:
    """A re-id model in ONNX: input ``(N, 3, H, W)`` float RGB, output ``(N, D)`` features.

    Args:
        path: the ``.onnx`` file (any person/vehicle re-id network exported with a batch axis).
        input_size: (width, height) the network expects; read from the model when its axes are fixed.
        mean: per-channel RGB mean subtracted after scaling to [0, 1].
        std: per-channel RGB standard deviation.
        threads: onnxruntime intra-op threads.

    Example:
        >>> embedder = OnnxReIdEmbedder("osnet_x0_25.onnx")  # doctest: +SKIP
        >>> embedder.embed(frame, detections.xyxy).shape  # doctest: +SKIP
        (7, 512)
    """

    def __init__(
        self,
        path: str | Path,
        input_size: tuple[int, int] | None = None,
        mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
        std: tuple[float, float, float] = (0.229, 0.224, 0.225),
        threads: int = 1,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError("no such re-id model file", path=self.path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(f"not a loadable ONNX re-id model ({error})", path=self.path) from error
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        shape = model_input.shape
        if input_size is None:
            if len(shape) != 4 or not isinstance(shape[2], int) or not isinstance(shape[3], int):
                raise ModelLoadError(
                    "input has dynamic height/width: pass input_size=(width, height)", path=path
                )
            input_size = (shape[3], shape[2])
        self.input_size = input_size
        self.mean = np.array(mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self.std = np.array(std, dtype=np.float32).reshape(1, 3, 1, 1)

    def embed(self, image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """L2-normalized ``(N, D)`` features of the boxes ``xyxy`` in the BGR ``image``."""
        if not len(xyxy):
            output = self.session.get_outputs()[0].shape
            dim = output[-1] if isinstance(output[-1], int) else 0
            return np.zeros((0, dim), dtype=np.float32)
        crops = crop_batch(image, xyxy, self.input_size)[..., ::-1]  # BGR -> RGB
        batch = crops.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        batch = (batch - self.mean) / self.std
        features = self.session.run(None, {self.input_name: batch})[0].reshape(len(xyxy), -1)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        return (features / np.maximum(norms, 1e-12)).astype(np.float32)
