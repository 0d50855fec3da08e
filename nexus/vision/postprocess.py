"""Decode raw YOLO head outputs into per-image detections (confidence filter + class-aware NMS)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nexus.vision.nms import batched_nms

MAX_BOXES_INTO_NMS = 30_000


@dataclass(frozen=True)
class PostprocessOptions:
    """Thresholds and limits of the decode step; defaults are Ultralytics predict's.

    Attributes:
        conf_threshold: drop candidates whose best class score is not above this (0..1).
        iou_threshold: suppress boxes overlapping a better box of the same class by more than this (0..1).
        max_detections: keep at most this many detections per image.
        classes: keep only these class ids; ``None`` keeps all.
        agnostic: suppress across classes too.

    Example:
        >>> PostprocessOptions(conf_threshold=0.5).iou_threshold
        0.7
    """

    conf_threshold: float = 0.25
    iou_threshold: float = 0.7
    max_detections: int = 300
    classes: tuple[int, ...] | None = None
    agnostic: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf_threshold <= 1.0:
            raise ValueError(f"conf_threshold must be within [0, 1], got {self.conf_threshold}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be within [0, 1], got {self.iou_threshold}")
        if self.max_detections < 1:
            raise ValueError(f"max_detections must be at least 1, got {self.max_detections}")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))


def decode_predictions(
    predictions: np.ndarray, num_classes: int, options: PostprocessOptions
) -> list[np.ndarray]:
    """Turn a ``(B, 4 + nc + extra, anchors)`` head output into per-image rows.

    Each row is ``x1, y1, x2, y2, score, class_id, extra...`` in network-input pixels, best first.
    ``extra`` holds e.g. the mask coefficients of a segmentation head.
    """
    batch_size, channels, _ = predictions.shape
    extra = channels - 4 - num_classes
    class_end = 4 + num_classes
    candidates = predictions[:, 4:class_end].max(axis=1) > options.conf_threshold
    results: list[np.ndarray] = []
    for index in range(batch_size):
        rows = predictions[index][:, candidates[index]].T
        if not len(rows):
            results.append(np.zeros((0, 6 + extra), dtype=np.float32))
            continue
        half_wh = rows[:, 2:4] / 2
        boxes = np.concatenate([rows[:, :2] - half_wh, rows[:, :2] + half_wh], axis=1)
        class_scores = rows[:, 4:class_end]
        class_id = class_scores.argmax(axis=1)
        score = class_scores[np.arange(len(rows)), class_id]
        keep = score > options.conf_threshold
        if options.classes is not None:
            keep &= np.isin(class_id, options.classes)
        boxes, score, class_id, rest = boxes[keep], score[keep], class_id[keep], rows[keep, class_end:]
        if len(score) > MAX_BOXES_INTO_NMS:
            top = np.argsort(-score, kind="stable")[:MAX_BOXES_INTO_NMS]
            boxes, score, class_id, rest = boxes[top], score[top], class_id[top], rest[top]
        kept = batched_nms(boxes, score, class_id, options.iou_threshold, options.agnostic)
        kept = kept[: options.max_detections]
        results.append(
            np.concatenate(
                [boxes[kept], score[kept, None], class_id[kept, None].astype(np.float32), rest[kept]], axis=1
            ).astype(np.float32, copy=False)
        )
    return results


def batch_postprocess(
    predictions: np.ndarray, num_classes: int, options_per_image: Sequence[PostprocessOptions]
) -> list[np.ndarray]:
    """Like ``decode_predictions`` but with per-image options (dynamic batching of mixed requests)."""
    if len(set(options_per_image)) == 1:
        return decode_predictions(predictions, num_classes, options_per_image[0])
    return [
        decode_predictions(predictions[i : i + 1], num_classes, options)[0]
        for i, options in enumerate(options_per_image)
    ]
