"""Decode images from files or bytes into BGR ``uint8`` arrays, with clear errors and a pixel cap."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from nexus.errors import ImageDecodeError

MAX_IMAGE_PIXELS = 64_000_000
"""Images larger than this many pixels are refused (decompression-bomb guard)."""

ImageSource = str | Path | bytes | bytearray | memoryview | np.ndarray


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header alone (no decode), or ``None`` when unknown."""
    from PIL import Image

    try:
        import io

        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
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
    size = _header_size(buffer)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageDecodeError(
            f"image of {size[0]}x{size[1]} pixels exceeds the limit of {max_pixels} pixels", path=name
        )
    array = np.frombuffer(buffer, dtype=np.uint8)
    image = cv2.imdecode(array, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageDecodeError("not a decodable image (corrupt, truncated or unsupported format)", path=name)
    if size is None and image.shape[0] * image.shape[1] > max_pixels:
        raise ImageDecodeError(f"image exceeds the limit of {max_pixels} pixels", path=name)
    return image


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
