"""Letterbox resize-and-pad, matching Ultralytics' ``LetterBox`` pixel for pixel, batched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxGeometry:
    """How one image was placed into the network input; maps boxes back to the original image.

    Attributes:
        original_shape: ``(height, width)`` of the source image.
        input_shape: ``(height, width)`` of the padded network input.
        resized_shape: ``(height, width)`` of the image after resizing, before padding.
        top: rows of padding above the image.
        left: columns of padding left of the image.
    """

    original_shape: tuple[int, int]
    input_shape: tuple[int, int]
    resized_shape: tuple[int, int]
    top: int
    left: int

    @property
    def gain(self) -> tuple[float, float]:
        """``(gain_y, gain_x)``: resized size over original size per axis."""
        return (
            self.resized_shape[0] / self.original_shape[0],
            self.resized_shape[1] / self.original_shape[1],
        )

    def boxes_to_original(self, xyxy: np.ndarray) -> np.ndarray:
        """Map ``(N, 4)`` xyxy boxes from input pixels to original pixels, clipped to the image."""
        gain_y, gain_x = self.gain
        boxes = xyxy.astype(np.float32, copy=True)
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.left) / gain_x
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.top) / gain_y
        height, width = self.original_shape
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
        return boxes


def letterbox_geometry(
    original_shape: tuple[int, int], new_shape: tuple[int, int], auto: bool = False, stride: int = 32
) -> LetterboxGeometry:
    """Compute where an image of ``original_shape`` lands in a ``new_shape`` input (no pixels touched).

    With ``auto`` the input shrinks to the smallest stride multiple that holds the resized image
    (Ultralytics' "minimum rectangle").
    """
    height, width = original_shape
    ratio = min(new_shape[0] / height, new_shape[1] / width)
    resized_w, resized_h = max(round(width * ratio), 1), max(round(height * ratio), 1)
    pad_w, pad_h = new_shape[1] - resized_w, new_shape[0] - resized_h
    if auto:
        pad_w, pad_h = pad_w % stride, pad_h % stride
    half_w, half_h = pad_w / 2, pad_h / 2
    top, bottom = round(half_h - 0.1), round(half_h + 0.1)
    left, right = round(half_w - 0.1), round(half_w + 0.1)
    return LetterboxGeometry(
        original_shape=(height, width),
        input_shape=(resized_h + top + bottom, resized_w + left + right),
        resized_shape=(resized_h, resized_w),
        top=top,
        left=left,
    )


def letterbox_into(image: np.ndarray, geometry: LetterboxGeometry, out: np.ndarray) -> None:
    """Resize ``image`` (HWC BGR uint8) and write it, padded, into ``out`` (HWC uint8 of input_shape)."""
    resized_h, resized_w = geometry.resized_shape
    if image.shape[:2] != (resized_h, resized_w):
        image = cv2.resize(image, (resized_w, resized_h), interpolation=cv2.INTER_LINEAR)
    out[...] = PAD_VALUE
    out[geometry.top : geometry.top + resized_h, geometry.left : geometry.left + resized_w] = image


def letterbox(
    image: np.ndarray, new_shape: int | tuple[int, int] = 640, auto: bool = False, stride: int = 32
) -> tuple[np.ndarray, LetterboxGeometry]:
    """Letterbox one HWC BGR image; returns the padded image and its geometry.

    Example:
        >>> padded, geometry = letterbox(np.zeros((480, 640, 3), np.uint8), 640)
        >>> padded.shape, geometry.top
        ((640, 640, 3), 80)
    """
    shape = (new_shape, new_shape) if isinstance(new_shape, int) else tuple(new_shape)
    geometry = letterbox_geometry(image.shape[:2], shape, auto=auto, stride=stride)
    out = np.empty((*geometry.input_shape, 3), dtype=np.uint8)
    letterbox_into(image, geometry, out)
    return out, geometry


def letterbox_batch(
    images: Sequence[np.ndarray],
    new_shape: int | tuple[int, int] = 640,
    auto: bool = False,
    stride: int = 32,
    dtype: type = np.float32,
    original_shapes: Sequence[tuple[int, int]] | None = None,
) -> tuple[np.ndarray, list[LetterboxGeometry]]:
    """Letterbox a batch into one ``(B, 3, H, W)`` RGB tensor scaled to ``[0, 1]``.

    Like Ultralytics, ``auto`` (minimum rectangle) applies only when every image has the same shape;
    otherwise all images are padded to the full ``new_shape``. With ``dtype=np.uint8`` the pixels stay
    unscaled (``0..255``); :func:`scale_pixels` turns them into exactly what a float ``dtype`` gives.
    ``original_shapes`` gives the full ``(height, width)`` of images decoded smaller (at least their
    letterboxed size): geometries, and so boxes and masks, then refer to the full images.
    """
    shape = (new_shape, new_shape) if isinstance(new_shape, int) else tuple(new_shape)
    if original_shapes is None:
        original_shapes = [image.shape[:2] for image in images]
    elif len(original_shapes) != len(images):
        raise ValueError(f"{len(original_shapes)} original shapes for {len(images)} images")
    auto = auto and len({tuple(original) for original in original_shapes}) == 1
    geometries = [
        letterbox_geometry(tuple(original), shape, auto=auto, stride=stride) for original in original_shapes
    ]
    input_h, input_w = geometries[0].input_shape
    canvas = np.empty((len(images), input_h, input_w, 3), dtype=np.uint8)
    for index, (image, geometry) in enumerate(zip(images, geometries, strict=True)):
        letterbox_into(image, geometry, canvas[index])
    rgb_chw = canvas[..., ::-1].transpose(0, 3, 1, 2)  # BGR -> RGB and HWC -> CHW, one strided view
    if np.dtype(dtype) == np.uint8:
        return np.ascontiguousarray(rgb_chw), geometries
    return scale_pixels(rgb_chw, dtype), geometries


def scale_pixels(pixels: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """``uint8`` pixels to ``[0, 1]`` in ``dtype``: a division (not a reciprocal multiply), which keeps
    the values bit-identical to Ultralytics' ``im / 255``."""
    out = np.empty(pixels.shape, dtype=dtype)
    np.divide(pixels, dtype(255), out=out, dtype=dtype)
    return out
