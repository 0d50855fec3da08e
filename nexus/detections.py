"""The core dataclass every adapter produces and every consumer takes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DataValue = np.ndarray | list


def _as_array(value: Any, dtype: Any, shape_tail: tuple[int, ...] = ()) -> np.ndarray:
    array = np.asarray(value, dtype=dtype)
    if array.size == 0:
        return array.reshape((0, *shape_tail))
    return array


@dataclass
class Detections:
    """Detections of one image: boxes, scores, classes and optional masks, track ids and extra data.

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes in pixels, ``x1, y1, x2, y2``.
        confidence: ``(N,)`` float32 scores, or ``None`` for ground truth.
        class_id: ``(N,)`` int64 class ids (0-based, the model's / dataset's own ids).
        mask: ``(N, H, W)`` bool instance masks at image resolution, or ``None``.
        tracker_id: ``(N,)`` int64 track ids, or ``None`` before tracking.
        data: extra per-detection arrays or lists, e.g. ``{"class_name": [...]}``; indexed with the rest.

    Example:
        >>> d = Detections(xyxy=[[0, 0, 10, 10]], confidence=[0.9], class_id=[2])
        >>> len(d), d.area.tolist()
        (1, [100.0])
    """

    xyxy: np.ndarray
    confidence: np.ndarray | None = None
    class_id: np.ndarray | None = None
    mask: np.ndarray | None = None
    tracker_id: np.ndarray | None = None
    data: dict[str, DataValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xyxy = _as_array(self.xyxy, np.float32, (4,))
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {self.xyxy.shape}")
        n = len(self.xyxy)
        self.class_id = (
            np.zeros(n, dtype=np.int64) if self.class_id is None else _as_array(self.class_id, np.int64)
        )
        if self.confidence is not None:
            self.confidence = _as_array(self.confidence, np.float32)
        if self.tracker_id is not None:
            self.tracker_id = _as_array(self.tracker_id, np.int64)
        if self.mask is not None:
            self.mask = np.asarray(self.mask, dtype=bool)
            if self.mask.ndim != 3:
                raise ValueError(f"mask must have shape (N, H, W), got {self.mask.shape}")
        for name in ("confidence", "class_id", "mask", "tracker_id"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} rows but xyxy has {n}")
        for key, value in self.data.items():
            if len(value) != n:
                raise ValueError(f"data[{key!r}] has {len(value)} rows but xyxy has {n}")

    def __len__(self) -> int:
        return len(self.xyxy)

    def __iter__(self) -> Iterator[Detections]:
        for i in range(len(self)):
            yield self[i : i + 1]

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        index_array = np.arange(len(self))[index]

        def pick(value: DataValue) -> DataValue:
            if isinstance(value, np.ndarray):
                return value[index_array]
            return [value[i] for i in index_array]

        return Detections(
            xyxy=self.xyxy[index_array],
            confidence=None if self.confidence is None else self.confidence[index_array],
            class_id=self.class_id[index_array],
            mask=None if self.mask is None else self.mask[index_array],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index_array],
            data={key: pick(value) for key, value in self.data.items()},
        )

    @classmethod
    def empty(cls, with_mask_shape: tuple[int, int] | None = None) -> Detections:
        """Zero detections; pass the image shape to carry an empty ``(0, H, W)`` mask."""
        mask = None if with_mask_shape is None else np.zeros((0, *with_mask_shape), dtype=bool)
        return cls(xyxy=np.zeros((0, 4), np.float32), confidence=np.zeros(0, np.float32), mask=mask)

    @property
    def area(self) -> np.ndarray:
        """Box areas in square pixels."""
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    @property
    def class_name(self) -> list[str] | None:
        names = self.data.get("class_name")
        return None if names is None else list(names)

    def with_class_names(self, names: Mapping[int, str] | Sequence[str]) -> Detections:
        """Return a copy whose ``data["class_name"]`` holds each detection's class name."""
        lookup = dict(enumerate(names)) if not isinstance(names, Mapping) else dict(names)
        data = dict(self.data)
        data["class_name"] = [lookup.get(int(c), str(int(c))) for c in self.class_id]
        return Detections(self.xyxy, self.confidence, self.class_id, self.mask, self.tracker_id, data)

    @classmethod
    def merge(cls, parts: Sequence[Detections]) -> Detections:
        """Concatenate detections of the same image (e.g. from several tiles)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()

        def cat(name: str) -> np.ndarray | None:
            values = [getattr(p, name) for p in parts]
            return None if any(v is None for v in values) else np.concatenate(values)

        data: dict[str, DataValue] = {}
        for key in parts[0].data:
            values = [p.data[key] for p in parts]
            data[key] = (
                np.concatenate(values)
                if all(isinstance(v, np.ndarray) for v in values)
                else [x for v in values for x in v]
            )
        return cls(cat("xyxy"), cat("confidence"), cat("class_id"), cat("mask"), cat("tracker_id"), data)

    def to_coco(
        self,
        image_id: int,
        category_ids: Mapping[int, int] | None = None,
        start_annotation_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """COCO annotations (ground truth) or results (with ``score``) for one image.

        Args:
            image_id: the COCO ``image_id`` to stamp on every entry.
            category_ids: class id -> COCO category id; identity when omitted.
            start_annotation_id: when given, entries get consecutive ``id`` fields and ``iscrowd``
                (ground-truth form).

        Returns:
            One dict per detection with ``bbox`` as ``[x, y, w, h]``, ``area`` and, when masks are
            present, ``segmentation`` as compressed RLE.
        """
        from nexus.vision.masks import encode_rle

        out: list[dict[str, Any]] = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.xyxy[i])
            cls = int(self.class_id[i])
            entry: dict[str, Any] = {
                "image_id": int(image_id),
                "category_id": int(category_ids[cls]) if category_ids else cls,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
            }
            if self.mask is not None:
                entry["segmentation"] = encode_rle(self.mask[i])
                entry["area"] = float(self.mask[i].sum())
            if self.confidence is not None:
                entry["score"] = float(self.confidence[i])
            if self.tracker_id is not None:
                entry["track_id"] = int(self.tracker_id[i])
            if start_annotation_id is not None:
                entry["id"] = start_annotation_id + i
                entry["iscrowd"] = 0
            out.append(entry)
        return out

    @classmethod
    def from_coco(
        cls,
        annotations: Sequence[Mapping[str, Any]],
        class_ids: Mapping[int, int] | None = None,
        image_shape: tuple[int, int] | None = None,
    ) -> Detections:
        """Build detections from COCO annotations or results of one image.

        Args:
            annotations: entries with ``bbox`` ``[x, y, w, h]`` and ``category_id``; ``score`` optional.
            class_ids: COCO category id -> class id; identity when omitted.
            image_shape: ``(height, width)``; when given and entries carry ``segmentation``, masks are
                decoded (polygons or RLE).
        """
        from nexus.vision.masks import decode_segmentation

        if not annotations:
            return cls.empty(with_mask_shape=image_shape)
        boxes = np.array([a["bbox"] for a in annotations], dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        categories = [int(a["category_id"]) for a in annotations]
        class_id = [class_ids[c] for c in categories] if class_ids else categories
        scores = [a.get("score") for a in annotations]
        confidence = None if any(s is None for s in scores) else np.array(scores, np.float32)
        mask = None
        if image_shape is not None and all("segmentation" in a for a in annotations):
            mask = np.stack([decode_segmentation(a["segmentation"], image_shape) for a in annotations])
        return cls(xyxy=boxes, confidence=confidence, class_id=class_id, mask=mask)
