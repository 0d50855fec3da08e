"""What a model file says about itself: class names, input size, stride, task, preprocessing."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from nexus.errors import ModelLoadError

TASKS = ("detect", "segment")
PREPROCESSING = {
    "letterbox": True,
    "pad_value": 114,
    "color": "RGB",
    "scale": "1/255",
    "layout": "NCHW",
    "interpolation": "bilinear",
}


def _parse_literal(value: str, key: str) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise ModelLoadError(f"model metadata {key!r} is not readable: {value[:60]!r}") from error


MAX_IMGSZ = 4096
"""The largest input size training, inference and the service accept (as the service's schemas)."""


@dataclass(frozen=True)
class ModelMetadata:
    """Everything needed to feed a model and read its outputs.

    Attributes:
        names: class id -> class name.
        imgsz: ``(height, width)`` the model was exported/trained at (the default input size).
        stride: the largest feature stride; rectangular inputs are padded to multiples of it.
        task: ``detect`` or ``segment``.
        dynamic: whether the input's batch and spatial sizes may vary.
        precision: ``fp32``, ``fp16`` or ``int8``.
        preprocessing: how inputs are prepared (letterbox, pad value, colour order, scale, layout).
        extra: other key/values found in the file (author, license, date, ...).

    Example:
        >>> ModelMetadata(names={0: "circle"}, imgsz=(160, 160)).num_classes
        1
    """

    names: dict[int, str]
    imgsz: tuple[int, int] = (640, 640)
    stride: int = 32
    task: str = "detect"
    dynamic: bool = True
    precision: str = "fp32"
    preprocessing: dict[str, Any] = field(default_factory=lambda: dict(PREPROCESSING))
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelLoadError(f"unsupported task {self.task!r}; supported: {', '.join(TASKS)}")
        if not self.names:
            raise ModelLoadError("model metadata has no class names")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def unknown_class_ids(self, classes: Iterable[int] | None) -> str | None:
        """``None`` when every id in ``classes`` is a class of this model, else what is wrong with them
        (a filter with unknown ids would silently drop every detection).

        Example:
            >>> ModelMetadata(names={0: "car", 1: "bus"}).unknown_class_ids([1, 7])
            '[7] are not classes of this model (it has 2: ids 0..1)'
        """
        unknown = sorted(set(classes or ()) - set(self.names))
        if not unknown:
            return None
        return (
            f"{unknown} are not classes of this model (it has {len(self.names)}: "
            f"ids {min(self.names, default=0)}..{max(self.names, default=-1)})"
        )

    @classmethod
    def from_onnx_properties(cls, properties: dict[str, str]) -> ModelMetadata:
        """Read the metadata that Ultralytics (and our export, which adds ``nexus_*`` keys) embeds."""
        if "names" not in properties:
            raise ModelLoadError(
                "ONNX file has no 'names' metadata: export it with `nexus export` or Ultralytics"
            )
        names = {int(k): str(v) for k, v in _parse_literal(properties["names"], "names").items()}
        imgsz = _parse_literal(properties.get("imgsz", "[640, 640]"), "imgsz")
        imgsz = (int(imgsz), int(imgsz)) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
        preprocessing = dict(PREPROCESSING)
        if "nexus_preprocessing" in properties:
            preprocessing.update(json.loads(properties["nexus_preprocessing"]))
        known = {"names", "imgsz", "stride", "task", "nexus_preprocessing", "nexus_precision"}
        return cls(
            names=names,
            imgsz=imgsz,
            stride=int(properties.get("stride", 32)),
            task=properties.get("task", "detect"),
            precision=properties.get("nexus_precision", "fp32"),
            preprocessing=preprocessing,
            extra={k: v for k, v in properties.items() if k not in known},
        )

    def to_onnx_properties(self) -> dict[str, str]:
        """Key/values to embed in an ONNX file, readable by Ultralytics too."""
        properties = dict(self.extra)
        properties.update(
            names=repr(self.names),
            imgsz=repr(list(self.imgsz)),
            stride=str(self.stride),
            task=self.task,
            nexus_precision=self.precision,
            nexus_preprocessing=json.dumps(self.preprocessing, sort_keys=True),
        )
        return properties

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
