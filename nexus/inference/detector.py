"""One ``Detector`` API over every backend: letterbox -> backend -> decode + NMS -> ``Detections``."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nexus.detections import Detections
from nexus.errors import ModelLoadError, NexusError
from nexus.inference.backends import InferenceBackend
from nexus.inference.metadata import MAX_IMGSZ, ModelMetadata
from nexus.vision.image_io import ImageSource, load_image
from nexus.vision.letterbox import LetterboxGeometry, letterbox_batch
from nexus.vision.postprocess import PostprocessOptions, decode_predictions
from nexus.vision.segmentation import masks_from_prototypes

MODEL_SUFFIXES = (".onnx", ".pt", ".engine")


def inference_device(device: str) -> str:
    """``cpu`` or one CUDA index as a string: ``cpu``, ``0``, ``cuda`` (= ``0``) and ``cuda:1`` are
    accepted.

    Example:
        >>> inference_device("cuda:1"), inference_device(" CPU ")
        ('1', 'cpu')
    """
    text = str(device).strip().lower()
    if text == "cpu":
        return "cpu"
    index = (text.removeprefix("cuda").removeprefix(":") or "0") if text.startswith("cuda") else text
    if not index.isascii() or not index.isdigit():
        raise ModelLoadError(
            f"device {device!r} is not a device; pass 'cpu' or one CUDA index such as '0' (or 'cuda:0')"
        )
    return str(int(index))


def load_backend(model: str | Path, device: str = "cpu", batch_shards: int = 1) -> InferenceBackend:
    """Pick the backend for a model file by its suffix (``.onnx``, ``.pt``, ``.engine``).

    ``batch_shards`` > 1 splits each batch across that many ONNX Runtime sessions (CPU only).
    """
    device = inference_device(device)
    path = Path(model)
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ModelLoadError(
            f"unknown model format {suffix or '(no suffix)'!r}; expected one of {MODEL_SUFFIXES}", path=path
        )
    if not path.is_file():
        raise ModelLoadError("no such model file", path=path)
    if batch_shards > 1 and (suffix != ".onnx" or device != "cpu"):
        raise ModelLoadError(
            f"batch shards ({batch_shards}) apply to ONNX models on the CPU, not to a {suffix} model on "
            f"device {device!r}; use 1 shard",
            path=path,
        )
    if suffix == ".onnx":
        from nexus.inference.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, device=device, batch_shards=batch_shards)
    if suffix == ".pt":
        from nexus.inference.backends.torch_backend import TorchBackend

        return TorchBackend(path, device=device)
    from nexus.inference.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(path, device=device)


def resolve_input_size(
    imgsz: int | Sequence[int] | None, metadata: ModelMetadata, dynamic: bool
) -> tuple[int, int]:
    """The network input size: the model's own unless overridden, rounded up to the stride."""
    if isinstance(imgsz, np.ndarray):
        imgsz = imgsz.tolist()
    if imgsz is None:
        size = metadata.imgsz
    elif _whole(imgsz):
        size = (int(imgsz), int(imgsz))
    elif (
        isinstance(imgsz, Sequence)
        and not isinstance(imgsz, str)
        and len(imgsz) in (1, 2)
        and all(_whole(side) for side in imgsz)
    ):
        size = (int(imgsz[0]), int(imgsz[-1]))
    else:
        raise NexusError(f"imgsz must be a whole number or [height, width], got {imgsz!r}")
    if min(size) <= 0:
        raise NexusError(f"imgsz must be positive, got {imgsz}")
    if imgsz is not None and max(size) > MAX_IMGSZ:
        raise NexusError(f"imgsz must be at most {MAX_IMGSZ}, got {imgsz}")
    stride = metadata.stride
    size = (math.ceil(size[0] / stride) * stride, math.ceil(size[1] / stride) * stride)
    if not dynamic and size != tuple(metadata.imgsz):
        raise NexusError(
            f"this model has a fixed input of {metadata.imgsz[0]}x{metadata.imgsz[1]}; "
            f"pass --imgsz {metadata.imgsz[0]} or export it with dynamic shapes"
        )
    return size


def _whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class Detector:
    """Detect (and segment) objects in images with any supported model file.

    Example:
        >>> detector = Detector.from_path("model.onnx")  # doctest: +SKIP
        >>> detections = detector.predict(["street.jpg"], conf=0.25)[0]  # doctest: +SKIP
        >>> detections.xyxy.shape  # doctest: +SKIP
        (3, 4)
    """

    def __init__(self, backend: InferenceBackend) -> None:
        self.backend = backend
        self.metadata = backend.metadata

    @classmethod
    def from_path(cls, model: str | Path, device: str = "cpu", batch_shards: int = 1) -> Detector:
        return cls(load_backend(model, device=device, batch_shards=batch_shards))

    @property
    def names(self) -> dict[int, str]:
        return self.metadata.names

    @property
    def task(self) -> str:
        return self.metadata.task

    def input_size(self, imgsz: int | Sequence[int] | None = None) -> tuple[int, int]:
        """``(height, width)`` that images are letterboxed into for ``imgsz`` (the model's own when
        ``None``)."""
        return resolve_input_size(imgsz, self.metadata, self.backend.dynamic_shape)

    def preprocess(
        self,
        images: Sequence[np.ndarray],
        imgsz: int | Sequence[int] | None = None,
        original_shapes: Sequence[tuple[int, int]] | None = None,
    ) -> tuple[np.ndarray, list[LetterboxGeometry]]:
        """Letterbox decoded BGR images into one batch in the backend's dtype; ``original_shapes``
        for images decoded below their full size (see ``letterbox_batch``)."""
        return letterbox_batch(
            images,
            self.input_size(imgsz),
            auto=self.backend.dynamic_shape,
            stride=self.metadata.stride,
            dtype=self.backend.input_dtype,
            original_shapes=original_shapes,
        )

    def postprocess(
        self,
        predictions: np.ndarray,
        protos: np.ndarray | None,
        geometries: Sequence[LetterboxGeometry],
        options: PostprocessOptions | Sequence[PostprocessOptions],
    ) -> list[Detections]:
        """Decode head outputs into ``Detections`` in original-image pixels (masks for segmentation)."""
        per_image = [options] * len(geometries) if isinstance(options, PostprocessOptions) else list(options)
        rows_per_image: list[np.ndarray] = []
        if len(set(per_image)) == 1:
            rows_per_image = decode_predictions(predictions, self.metadata.num_classes, per_image[0])
        else:
            for index, image_options in enumerate(per_image):
                rows_per_image += decode_predictions(
                    predictions[index : index + 1], self.metadata.num_classes, image_options
                )
        return self.detections_from_rows(rows_per_image, protos, geometries)

    def detections_from_rows(
        self,
        rows_per_image: Sequence[np.ndarray],
        protos: np.ndarray | None,
        geometries: Sequence[LetterboxGeometry],
    ) -> list[Detections]:
        """``Detections`` in original-image pixels from ``decode_predictions`` rows (and masks from the
        prototypes of a segmentation head)."""
        results = []
        for index, (rows, geometry) in enumerate(zip(rows_per_image, geometries, strict=True)):
            boxes = geometry.boxes_to_original(rows[:, :4])
            detections = Detections(xyxy=boxes, confidence=rows[:, 4], class_id=rows[:, 5].astype(np.int64))
            if protos is not None:
                masks = masks_from_prototypes(protos[index], rows[:, 6:], boxes, geometry)
                detections.mask = masks
                detections = detections[masks.any(axis=(1, 2))] if len(detections) else detections
            results.append(detections.with_class_names(self.names))
        return results

    def predict_arrays(
        self,
        images: Sequence[np.ndarray],
        options: PostprocessOptions | Sequence[PostprocessOptions] = PostprocessOptions(),
        imgsz: int | Sequence[int] | None = None,
        original_shapes: Sequence[tuple[int, int]] | None = None,
    ) -> list[Detections]:
        """Run one batch of decoded BGR images (the serving path's entry point); ``original_shapes``
        for images decoded below their full size, whose detections are then in full-size pixels."""
        if not images:
            return []
        batch, geometries = self.preprocess(images, imgsz, original_shapes)
        predictions, protos = self.backend.infer(batch)
        return self.postprocess(predictions, protos, geometries, options)

    def predict(
        self,
        images: ImageSource | Sequence[ImageSource],
        conf: float = 0.25,
        iou: float = 0.7,
        imgsz: int | Sequence[int] | None = None,
        max_det: int = 300,
        classes: Sequence[int] | None = None,
        agnostic_nms: bool = False,
        batch_size: int = 1,
    ) -> list[Detections]:
        """Detect objects in images given as paths, encoded bytes or BGR arrays.

        Arguments mean what they mean in Ultralytics ``predict``; ``batch_size`` > 1 batches images
        (images of different shapes are then padded to the full square input, like Ultralytics).
        """
        if isinstance(images, (str, Path, bytes, bytearray, memoryview, np.ndarray)):
            images = [images]
        try:
            options = PostprocessOptions(
                conf_threshold=conf,
                iou_threshold=iou,
                max_detections=max_det,
                classes=None if classes is None else tuple(classes),
                agnostic=agnostic_nms,
            )
        except ValueError as error:
            raise NexusError(str(error)) from error
        if batch_size < 1:
            raise NexusError(f"batch_size must be at least 1, got {batch_size}")
        unknown = self.metadata.unknown_class_ids(options.classes)
        if unknown:
            raise NexusError(f"class id(s) {unknown}")
        results: list[Detections] = []
        for start in range(0, len(images), batch_size):
            decoded = [load_image(source) for source in images[start : start + batch_size]]
            results += self.predict_arrays(decoded, options, imgsz)
        return results

    __call__ = predict
