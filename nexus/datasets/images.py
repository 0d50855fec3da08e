"""Image files inside datasets: which files count as images, their sizes, and whether they decode."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from nexus.errors import ImageDecodeError

IMAGE_SUFFIXES = frozenset({".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"})
"""File suffixes (lower case) that Ultralytics and this package treat as images."""

_EXIF_ORIENTATION = 0x0112
_MIN_SIDE = 2


def is_image_file(path: Path) -> bool:
    """True when ``path`` has an image suffix (the content is not checked).

    Example:
        >>> is_image_file(Path("a/B.JPG")), is_image_file(Path("a/b.txt"))
        (True, False)
    """
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(directory: Path) -> list[Path]:
    """Image files under ``directory`` (recursively), sorted by path.

    Example:
        >>> list_images(Path("/nonexistent"))
        []
    """
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file() and is_image_file(p))


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    width, height = image.size
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION)
    except Exception:
        orientation = None
    if orientation in (5, 6, 7, 8):
        return height, width
    return width, height


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image from its header, after EXIF rotation (as OpenCV loads it).

    Raises:
        ImageDecodeError: the file is missing or its header is not an image's.

    Example:
        >>> image_size(Path("images/train/a.jpg"))  # doctest: +SKIP
        (160, 160)
    """
    try:
        with Image.open(path) as image:
            return _oriented_size(image)
    except FileNotFoundError as error:
        raise ImageDecodeError("no such image file", path=path) from error
    except Exception as error:
        raise ImageDecodeError(f"not an image ({error})", path=path) from error


def verify_image(data: bytes, name: str) -> tuple[int, int]:
    """Fully decode encoded image bytes and return ``(width, height)``.

    Truncated files, empty files and files that are not images are refused, as is anything
    smaller than 2x2 pixels.

    Args:
        data: the encoded image.
        name: the file to name in error messages.

    Raises:
        ImageDecodeError: with a one-line reason.

    Example:
        >>> verify_image(b"", "x.jpg")
        Traceback (most recent call last):
        ...
        nexus.errors.ImageDecodeError: x.jpg: empty file (0 bytes)
    """
    if not data:
        raise ImageDecodeError("empty file (0 bytes)", path=name)
    try:
        with Image.open(io.BytesIO(data)) as image:
            size = _oriented_size(image)
            image.load()
    except Exception as error:
        reason = str(error) or type(error).__name__
        raise ImageDecodeError(f"corrupt or not an image ({reason})", path=name) from error
    if min(size) < _MIN_SIDE:
        raise ImageDecodeError(f"image is only {size[0]}x{size[1]} pixels", path=name)
    return size
