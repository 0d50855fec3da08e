"""Instance masks: COCO RLE and polygon conversions (pycocotools' mask API)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode one ``(H, W)`` bool mask as COCO compressed RLE with a UTF-8 ``counts`` string.

    Example:
        >>> rle = encode_rle(np.ones((4, 4), bool))
        >>> rle["size"]
        [4, 4]
    """
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"]}


def decode_segmentation(segmentation: Any, image_shape: tuple[int, int]) -> np.ndarray:
    """Decode a COCO segmentation (polygons, uncompressed or compressed RLE) into an ``(H, W)`` bool mask."""
    height, width = image_shape
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    return mask_utils.decode(rle).astype(bool)


def polygon_to_mask(polygon_xy: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """Rasterize one polygon given as ``(K, 2)`` pixel coordinates."""
    return decode_segmentation([np.asarray(polygon_xy, dtype=np.float64).ravel().tolist()], image_shape)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight ``(N, 4)`` xyxy boxes around ``(N, H, W)`` masks (zeros for empty masks)."""
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for i, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(xs):
            boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return boxes
