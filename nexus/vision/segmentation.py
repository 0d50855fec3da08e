"""Instance masks from a YOLO segmentation head (prototypes x coefficients), at image resolution."""

from __future__ import annotations

import cv2
import numpy as np

from nexus.vision.letterbox import LetterboxGeometry

_PIXEL_BUDGET = 16_000_000


def _sigmoid_free_logits(protos: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    channels, height, width = protos.shape
    return (coefficients @ protos.reshape(channels, -1)).reshape(-1, height, width)


def masks_from_prototypes(
    protos: np.ndarray,
    coefficients: np.ndarray,
    boxes_original: np.ndarray,
    geometry: LetterboxGeometry,
) -> np.ndarray:
    """Assemble ``(N, H, W)`` bool masks in original-image pixels (Ultralytics' "retina" masks).

    The mask logits are upsampled (bilinear) to the network input, the letterbox padding is cut off,
    the rest is resized to the original image, thresholded at 0 and cropped to each box.

    Args:
        protos: ``(nm, mh, mw)`` prototype masks of one image.
        coefficients: ``(N, nm)`` mask coefficients of its detections.
        boxes_original: ``(N, 4)`` xyxy boxes in original-image pixels.
        geometry: the letterbox placement of the image.
    """
    height, width = geometry.original_shape
    count = len(coefficients)
    masks = np.zeros((count, height, width), dtype=bool)
    if count == 0:
        return masks
    logits = _sigmoid_free_logits(protos.astype(np.float32), coefficients.astype(np.float32))
    input_h, input_w = geometry.input_shape
    resized_h, resized_w = geometry.resized_shape
    top, left = geometry.top, geometry.left
    chunk = max(1, min(512, _PIXEL_BUDGET // (height * width + input_h * input_w)))
    columns = np.arange(width, dtype=np.float32)
    rows = np.arange(height, dtype=np.float32)
    for start in range(0, count, chunk):
        block = logits[start : start + chunk].transpose(1, 2, 0)  # HWC for cv2
        block = cv2.resize(block, (input_w, input_h), interpolation=cv2.INTER_LINEAR)
        block = block.reshape(input_h, input_w, -1)[top : top + resized_h, left : left + resized_w]
        block = cv2.resize(block, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width, -1)
        masks[start : start + chunk] = block.transpose(2, 0, 1) > 0
    x1, y1, x2, y2 = (boxes_original[:, i, None] for i in range(4))
    inside_columns = (columns[None] >= x1) & (columns[None] < x2)
    inside_rows = (rows[None] >= y1) & (rows[None] < y2)
    masks &= inside_rows[:, :, None] & inside_columns[:, None, :]
    return masks
