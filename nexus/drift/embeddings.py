"""Image embeddings for drift: a fixed pixel descriptor, or a detection model's own backbone features.

Two deterministic, offline embeddings:

* ``pixel_embedding`` (no model): an 8x8 grayscale thumbnail (64 values in ``[0, 1]``), an HSV
  colour histogram (8 hue + 4 saturation + 4 value bins, each group sums to 1) and a histogram of
  gradient magnitudes (8 fixed log-spaced bins of the Sobel magnitude, sums to 1). The thumbnail sees
  layout and brightness, the colour histogram sees colour casts, the gradient histogram sees blur,
  noise and scale. 88 values.
* ``OnnxFeatures`` (an ONNX detection model): the model is run once per image with one extra graph
  output, the feature map that the SPPF block pools (the input of the graph's first ``MaxPool``: the
  deepest, stride-32 backbone feature of YOLOv5/v8/11), global-average pooled to one value per
  channel. The same run also gives the detections, so a model is evaluated once per image. A graph
  without a ``MaxPool`` has no such tensor: ``feature_tensor_name`` returns ``None`` and callers fall
  back to the pixel embedding.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from nexus.detections import Detections
from nexus.errors import ModelLoadError

if TYPE_CHECKING:
    import onnx
    import onnxruntime

    from nexus.inference.detector import Detector

logger = logging.getLogger("nexus.drift")
THUMBNAIL_SIDE = 8
HUE_BINS, SATURATION_BINS, VALUE_BINS = 8, 4, 4
GRADIENT_EDGES = np.concatenate([[0.0], np.geomspace(0.01, 2.0, 7), [np.inf]])
"""Bin edges of the Sobel gradient magnitude of a ``[0, 1]`` grayscale image (8 bins)."""
PIXEL_EMBEDDING_SIZE = THUMBNAIL_SIDE**2 + HUE_BINS + SATURATION_BINS + VALUE_BINS + len(GRADIENT_EDGES) - 1


def _normalized_histogram(
    values: np.ndarray, bins: int | np.ndarray, value_range: tuple[float, float]
) -> np.ndarray:
    counts, _ = np.histogram(values, bins=bins, range=value_range)
    return counts / max(int(counts.sum()), 1)


def pixel_embedding(image: np.ndarray) -> np.ndarray:
    """The fixed 88-value descriptor of a BGR ``uint8`` image (see the module docstring).

    Example:
        >>> vector = pixel_embedding(np.full((32, 48, 3), 128, np.uint8))
        >>> vector.shape, round(float(vector[0]), 3)
        ((88,), 0.502)
    """
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    thumbnail = cv2.resize(gray, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    unit = gray.astype(np.float32) / 255.0
    magnitude = np.hypot(
        cv2.Sobel(unit, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(unit, cv2.CV_32F, 0, 1, ksize=3)
    )
    parts = [
        thumbnail.ravel().astype(np.float64) / 255.0,
        _normalized_histogram(hsv[..., 0], HUE_BINS, (0, 180)),
        _normalized_histogram(hsv[..., 1], SATURATION_BINS, (0, 256)),
        _normalized_histogram(hsv[..., 2], VALUE_BINS, (0, 256)),
        _normalized_histogram(magnitude, GRADIENT_EDGES, (0.0, float("inf"))),
    ]
    return np.concatenate(parts).astype(np.float32)


def feature_tensor_name(model: onnx.ModelProto) -> str | None:
    """The tensor the SPPF block pools (the input of the first ``MaxPool`` node), or ``None``.

    Example:
        >>> import onnx  # doctest: +SKIP
        >>> feature_tensor_name(onnx.load("model.onnx"))  # doctest: +SKIP
        '/model.9/cv1/act/Mul_output_0'
    """
    for node in model.graph.node:
        if node.op_type == "MaxPool" and node.input:
            return str(node.input[0])
    return None


class OnnxFeatures:
    """Detections and pooled backbone features of an ONNX detection model, from one run per image.

    Attributes:
        detector: the ``nexus.inference.Detector`` used for letterboxing and decoding.
        tensor: the name of the feature tensor (see ``feature_tensor_name``).

    Example:
        >>> features = OnnxFeatures.open("model.onnx")  # doctest: +SKIP
        >>> detections, vector = features(image, conf=0.25)  # doctest: +SKIP
        >>> vector.shape  # doctest: +SKIP
        (128,)
    """

    def __init__(self, detector: Detector, session: onnxruntime.InferenceSession, tensor: str) -> None:
        self.detector = detector
        self.session = session
        self.tensor = tensor
        self._outputs = [output.name for output in session.get_outputs()]
        self._input = session.get_inputs()[0].name

    @classmethod
    def open(cls, model: str | Path) -> OnnxFeatures | None:
        """Load ``model`` with the extra feature output; ``None`` when the graph has no SPPF tensor (or
        onnxruntime refuses the extra output).

        Raises:
            ModelLoadError: the file is missing or is not a loadable ONNX model.
        """
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import onnx
        import onnxruntime as ort

        from nexus.inference.detector import Detector

        detector = Detector.from_path(model)  # clear errors for missing / non-model files
        graph = onnx.load(str(model))
        tensor = feature_tensor_name(graph)
        if tensor is None:
            return None
        inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(graph).graph.value_info}
        elem_type = (
            inferred[tensor].type.tensor_type.elem_type if tensor in inferred else onnx.TensorProto.FLOAT
        )
        graph.graph.output.append(onnx.helper.make_tensor_value_info(tensor, elem_type, None))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types
            logger.warning(
                "%s: cannot expose feature tensor %r (%s); using pixel embeddings", model, tensor, error
            )
            return None
        return cls(detector, session, tensor)

    def __call__(self, image: np.ndarray, conf: float) -> tuple[Detections, np.ndarray]:
        """Detections above ``conf`` and the ``(C,)`` pooled feature vector of one BGR image."""
        from nexus.vision.postprocess import PostprocessOptions

        batch, geometries = self.detector.preprocess([image])
        outputs = self.session.run(self._outputs, {self._input: batch})
        feature = np.asarray(outputs[-1], dtype=np.float32)
        if feature.ndim != 4:
            raise ModelLoadError(f"feature tensor {self.tensor!r} has shape {feature.shape}, expected 4-D")
        predictions = np.asarray(outputs[0], dtype=np.float32)
        protos = np.asarray(outputs[1], dtype=np.float32) if len(outputs) > 2 else None
        options = PostprocessOptions(conf_threshold=conf)
        detections = self.detector.postprocess(predictions, protos, geometries, options)[0]
        return detections, feature[0].mean(axis=(1, 2))


class ImageEncoder:
    """Embeds images and, when a model is given, detects objects in them (one model run per image).

    With an ONNX model that has an SPPF feature tensor the embedding is the model's pooled features;
    otherwise (no model, a ``.pt``/``.engine`` model, or an ONNX graph without a ``MaxPool``) it is
    ``pixel_embedding``. ``source`` says which: ``"pixels"`` or ``"onnx:<tensor name>"``.

    Example:
        >>> encoder = ImageEncoder()
        >>> vector, detections = encoder(np.zeros((16, 16, 3), np.uint8))
        >>> encoder.source, vector.shape, detections is None
        ('pixels', (88,), True)
    """

    def __init__(self, model: str | Path | None = None, conf: float = 0.25) -> None:
        from nexus.inference.detector import Detector

        self.conf = conf
        self.source = "pixels"
        self._features: OnnxFeatures | None = None
        self._detector: Detector | None = None
        if model is None:
            return
        if Path(model).suffix.lower() == ".onnx":
            self._features = OnnxFeatures.open(model)
        if self._features is not None:
            self.source = f"onnx:{self._features.tensor}"
        else:
            self._detector = Detector.from_path(model)

    @property
    def has_model(self) -> bool:
        return self._features is not None or self._detector is not None

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, Detections | None]:
        """``(embedding, detections or None)`` of one BGR ``uint8`` image."""
        if self._features is not None:
            detections, vector = self._features(image, self.conf)
            return vector, detections
        detections = None
        if self._detector is not None:
            from nexus.vision.postprocess import PostprocessOptions

            options = PostprocessOptions(conf_threshold=self.conf)
            detections = self._detector.predict_arrays([image], options)[0]
        return pixel_embedding(image), detections
