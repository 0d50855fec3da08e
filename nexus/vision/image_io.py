"""Decode images from files or bytes into BGR ``uint8`` arrays, with clear errors and a pixel cap."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import simplejpeg

from nexus.errors import ImageDecodeError

MAX_IMAGE_PIXELS = 64_000_000
"""Images larger than this many pixels are refused (decompression-bomb guard)."""

ImageSource = str | Path | bytes | bytearray | memoryview | np.ndarray


_EXIF_ORIENTATION = 0x0112


def _probe(data: bytes) -> tuple[tuple[int, int] | None, bool]:
    """``(width, height)`` from the header alone (no decode; ``None`` when unknown), and whether the
    image is a baseline-kind JPEG (YCbCr or grayscale, upright) that :func:`_decode_jpeg` may take."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
            if image.format != "JPEG" or image.mode not in ("RGB", "L"):
                return size, False
            try:
                orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            except Exception:  # unreadable EXIF: OpenCV decodes it as it always did
                return size, False
            return size, orientation == 1
    except Exception:
        return None, False


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header alone (no decode), or ``None`` when unknown."""
    return _probe(data)[0]


def _decode_jpeg(data: bytes) -> np.ndarray | None:
    """libjpeg-turbo through its TurboJPEG API: the same pixels as ``cv2.imdecode`` (same library,
    same integer IDCT and upsampling) in about 0.85 of its time. ``None`` when it refuses the data
    (a truncated or corrupt file, an unusual JPEG), which then goes to OpenCV for the verdict."""
    try:
        return simplejpeg.decode_jpeg(data, colorspace="BGR")
    except ValueError:
        return None


def decode_image_bytes(
    data: bytes | bytearray | memoryview, name: str = "<bytes>", max_pixels: int = MAX_IMAGE_PIXELS
) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, WebP, BMP, TIFF) into an ``(H, W, 3)`` BGR array.

    Args:
        data: the encoded image.
        name: what to call the image in error messages (a file name, ``instance 3``).
        max_pixels: refuse images whose header promises more pixels than this.

    Raises:
        ImageDecodeError: empty, truncated, non-image or oversized input.

    Example:
        >>> ok, png = cv2.imencode(".png", np.zeros((2, 3, 3), np.uint8))
        >>> decode_image_bytes(png.tobytes()).shape
        (2, 3, 3)
    """
    buffer = bytes(data)
    if not buffer:
        raise ImageDecodeError("empty image data", path=name)
    return _decode_probed(buffer, *_probe(buffer), name=name, max_pixels=max_pixels)


def _decode_probed(
    buffer: bytes, size: tuple[int, int] | None, plain_jpeg: bool, name: str, max_pixels: int
) -> np.ndarray:
    """:func:`decode_image_bytes` for non-empty bytes whose header :func:`_probe` has read."""
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageDecodeError(
            f"image of {size[0]}x{size[1]} pixels exceeds the limit of {max_pixels} pixels", path=name
        )
    image = _decode_jpeg(buffer) if plain_jpeg else None
    if image is None:  # other formats; JPEGs with an EXIF rotation, which OpenCV applies
        image = cv2.imdecode(np.frombuffer(buffer, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageDecodeError("not a decodable image (corrupt, truncated or unsupported format)", path=name)
    if size is None and image.shape[0] * image.shape[1] > max_pixels:
        raise ImageDecodeError(f"image exceeds the limit of {max_pixels} pixels", path=name)
    return image


@dataclass(frozen=True)
class ScaledImage:
    """A JPEG decoded below its full size for a network input that is smaller still.

    Attributes:
        pixels: the decoded ``(h, w, 3)`` BGR image, 1/2, 1/4 or 1/8 of the full size per side.
        original_shape: ``(height, width)`` of the full image: where detections are reported.
    """

    pixels: np.ndarray
    original_shape: tuple[int, int]


def pixels_and_shape(image: np.ndarray | ScaledImage) -> tuple[np.ndarray, tuple[int, int]]:
    """The pixels to letterbox and the full ``(height, width)`` that detections refer to.

    Example:
        >>> pixels_and_shape(ScaledImage(np.zeros((30, 40, 3), np.uint8), (120, 160)))[1]
        (120, 160)
        >>> pixels_and_shape(np.zeros((30, 40, 3), np.uint8))[1]
        (30, 40)
    """
    if isinstance(image, ScaledImage):
        return image.pixels, image.original_shape
    return image, (image.shape[0], image.shape[1])


_JPEG_SCALES = (8, 4, 2)
"""Downscale factors with SIMD IDCTs in libjpeg-turbo; its other M/8 factors cost about a full decode."""


def decode_image_for_input(
    data: bytes | bytearray | memoryview,
    input_shape: tuple[int, int],
    name: str = "<bytes>",
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> np.ndarray | ScaledImage:
    """Decode an image that will be letterboxed into ``input_shape``, skipping detail it would lose.

    A JPEG at least twice the size of its letterbox is decoded at 1/2, 1/4 or 1/8 of its size
    (libjpeg's scaled IDCT, which averages the dropped detail rather than skipping it), never below
    the size it is resized to; that decode is 1.3-1.8x faster. Other images decode whole, exactly
    as :func:`decode_image_bytes`.

    Args:
        data: the encoded image.
        input_shape: ``(height, width)`` of the network input the image is letterboxed into.
        name: what to call the image in error messages.
        max_pixels: refuse images whose full size exceeds this many pixels.

    Returns:
        A :class:`ScaledImage` for a JPEG decoded smaller, else the whole ``(H, W, 3)`` BGR array.

    Raises:
        ImageDecodeError: empty, truncated, non-image or oversized input.

    Example:
        >>> import simplejpeg
        >>> jpeg = simplejpeg.encode_jpeg(np.zeros((480, 640, 3), np.uint8), colorspace="BGR")
        >>> scaled = decode_image_for_input(jpeg, (160, 160))
        >>> scaled.pixels.shape, scaled.original_shape
        ((120, 160, 3), (480, 640))
        >>> decode_image_for_input(jpeg, (640, 640)).shape
        (480, 640, 3)
    """
    buffer = bytes(data)
    if not buffer:
        raise ImageDecodeError("empty image data", path=name)
    size, plain_jpeg = _probe(buffer)
    if plain_jpeg and size is not None and 0 < size[0] * size[1] <= max_pixels:
        width, height = size
        ratio = min(input_shape[0] / height, input_shape[1] / width)
        needed_w, needed_h = max(round(width * ratio), 1), max(round(height * ratio), 1)
        factor = next(
            (k for k in _JPEG_SCALES if -(-width // k) >= needed_w and -(-height // k) >= needed_h), 1
        )
        if factor > 1:
            scaled_w, scaled_h = math.ceil(width / factor), math.ceil(height / factor)
            try:
                pixels = simplejpeg.decode_jpeg(
                    buffer, colorspace="BGR", min_width=scaled_w, min_height=scaled_h
                )
            except ValueError:
                pixels = None  # corrupt or unusual: the whole decode below gives the verdict
            if pixels is not None and pixels.shape[:2] == (scaled_h, scaled_w):
                return ScaledImage(pixels, (height, width))
    return _decode_probed(buffer, size, plain_jpeg, name=name, max_pixels=max_pixels)


def load_image(source: ImageSource, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Load an image from a path, encoded bytes or an array (HWC BGR ``uint8``, or HW grayscale).

    Raises:
        ImageDecodeError: the file is missing or is not an image, or the array has a wrong shape/dtype.
    """
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8:
            raise ImageDecodeError(f"image array must be uint8, got {source.dtype}")
        if source.ndim == 2:
            return cv2.cvtColor(source, cv2.COLOR_GRAY2BGR)
        if source.ndim != 3 or source.shape[2] not in (3, 4) or 0 in source.shape:
            raise ImageDecodeError(f"image array must have shape (H, W, 3), got {source.shape}")
        return source[:, :, :3] if source.shape[2] == 4 else source
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image_bytes(source, max_pixels=max_pixels)
    path = Path(source)
    if not path.is_file():
        raise ImageDecodeError("no such image file", path=path)
    return decode_image_bytes(path.read_bytes(), name=str(path), max_pixels=max_pixels)
