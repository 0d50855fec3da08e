"""Instance masks from a YOLO segmentation head (prototypes x coefficients), at image resolution."""

from __future__ import annotations

import math

import cv2
import numpy as np

from nexus.vision.letterbox import LetterboxGeometry

_PIXEL_BUDGET = 16_000_000


def _upsample_factor(proto_h: int, proto_w: int, height: int, width: int) -> int:
    """The smallest upsampling of the prototypes (1, 2 or 4) at which the letterbox padding of an
    ``height x width`` image spans whole pixels (the prototypes are a quarter of the input)."""
    gain = min(4 * proto_h / height, 4 * proto_w / width)
    pad = (4 * proto_h - max(round(height * gain), 1)) | (4 * proto_w - max(round(width * gain), 1))
    return 4 // math.gcd(4, pad | pad // 2)


def _content_window(mask_h: int, mask_w: int, height: int, width: int) -> tuple[int, int, int, int]:
    """``top, bottom, left, right`` of the image inside a letterboxed ``mask_h x mask_w`` mask, rounded
    as Ultralytics' ``scale_masks`` rounds them."""
    gain = min(mask_h / height, mask_w / width)
    content_h, content_w = max(round(height * gain), 1), max(round(width * gain), 1)
    top, left = round((mask_h - content_h) / 2 - 0.1), round((mask_w - content_w) / 2 - 0.1)
    return top, top + content_h, left, left + content_w


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

    As Ultralytics' ``process_mask_native``: the mask logits are upsampled (bilinear) by the smallest
    factor (1, 2 or 4) that lets the letterbox padding be cut off on whole pixels, the padding is cut
    off, the rest is resized to the original image, thresholded at 0 and cropped to each box.

    Args:
        protos: ``(nm, mh, mw)`` prototype masks of one image (a quarter of the network input).
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
    proto_h, proto_w = protos.shape[1:]
    factor = _upsample_factor(proto_h, proto_w, height, width)
    up_h, up_w = factor * proto_h, factor * proto_w
    top, bottom, left, right = _content_window(up_h, up_w, height, width)
    chunk = max(1, min(512, _PIXEL_BUDGET // (height * width + up_h * up_w)))
    columns = np.arange(width, dtype=np.float32)
    rows = np.arange(height, dtype=np.float32)
    for start in range(0, count, chunk):
        block = logits[start : start + chunk].transpose(1, 2, 0)  # HWC for cv2
        if factor > 1:
            block = cv2.resize(block, (up_w, up_h), interpolation=cv2.INTER_LINEAR)
        block = block.reshape(up_h, up_w, -1)[top:bottom, left:right]
        block = cv2.resize(block, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width, -1)
        masks[start : start + chunk] = block.transpose(2, 0, 1) > 0
    x1, y1, x2, y2 = (boxes_original[:, i, None] for i in range(4))
    inside_columns = (columns[None] >= x1) & (columns[None] < x2)
    inside_rows = (rows[None] >= y1) & (rows[None] < y2)
    masks &= inside_rows[:, :, None] & inside_columns[:, None, :]
    return masks
