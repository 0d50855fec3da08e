"""Non-maximum suppression in NumPy, matching ``torchvision.ops.nms`` and Ultralytics' class offsets."""

from __future__ import annotations

import numpy as np

CLASS_OFFSET = 7680
"""Per-class coordinate offset used for class-aware NMS (Ultralytics' ``max_wh``)."""


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` xyxy boxes -> ``(N, M)``."""
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    wh = np.clip(bottom_right - top_left, 0, None)
    intersection = wh[..., 0] * wh[..., 1]
    return intersection / (area_a[:, None] + area_b[None, :] - intersection)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS; returns indices of kept boxes in descending score order.

    A box is suppressed when its IoU with a higher-scoring kept box is strictly greater than
    ``iou_threshold`` (torchvision's rule). Ties in score keep the lower index first.

    Example:
        >>> nms(np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32),
        ...     np.array([0.9, 0.8, 0.7], np.float32), 0.5).tolist()
        [0, 2]
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order].astype(np.float32, copy=False)
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep: list[int] = []
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = np.arange(i + 1, len(boxes))
        rest = rest[~suppressed[rest]]
        if not len(rest):
            break
        width = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        height = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        intersection = width * height
        iou = intersection / (areas[i] + areas[rest] - intersection)
        suppressed[rest[iou > iou_threshold]] = True
    return order[np.asarray(keep, dtype=np.int64)]


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float, agnostic: bool = False
) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other (unless ``agnostic``)."""
    if agnostic or len(boxes) == 0:
        return nms(boxes, scores, iou_threshold)
    offsets = class_ids.astype(np.float32)[:, None] * CLASS_OFFSET
    return nms(boxes + offsets, scores, iou_threshold)
