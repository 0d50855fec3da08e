"""Decode images from files or bytes into BGR ``uint8`` arrays, with clear errors and a pixel cap."""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import simplejpeg

from nexus.errors import ImageDecodeError

MAX_IMAGE_PIXELS = 64_000_000
"""Images larger than this many pixels are refused (decompression-bomb guard)."""

ImageSource = str | Path | bytes | bytearray | memoryview | np.ndarray


_EXIF_ORIENTATION = 0x0112


class _Header(NamedTuple):
    """What :func:`_probe` reads from an image's header without decoding it."""

    size: tuple[int, int] | None  # (width, height); None when unknown
    plain_jpeg: bool = False  # a baseline-kind JPEG (YCbCr or grayscale, upright) that _decode_jpeg may take
    pixels: int | None = None  # width * height; also known (without the size) past Pillow's own cap
    refusal: str | None = None  # why the image must not reach a decoder at all


def _probe(data: bytes) -> _Header:
    """The header of ``data``: Pillow's reading, or ours for Radiance HDR (which Pillow cannot read
    and OpenCV decodes, as 32-bit floats)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
            if image.format != "JPEG" or image.mode not in ("RGB", "L"):
                return _Header(size, False, size[0] * size[1])
            try:
                orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            except Exception:  # unreadable EXIF: OpenCV decodes it as it always did
                return _Header(size, False, size[0] * size[1])
            return _Header(size, orientation == 1, size[0] * size[1])
    except Image.DecompressionBombError as error:
        # past twice its own cap (179 M pixels) Pillow stops before giving the size, which OpenCV
        # would then decode whole before our check could refuse it; the pixel count is in the message
        found = re.search(r"\((\d+) pixels\)", str(error))
        return _Header(None, pixels=int(found[1])) if found else _Header(None, refusal=str(error))
    except Exception:
        if not data.startswith(_RADIANCE_SIGNATURES):
            return _Header(None)
        size = _radiance_size(data)
        if size is None:  # a header OpenCV may read otherwise: refused rather than decoded blind
            return _Header(None, refusal="not a decodable image (unreadable Radiance HDR header)")
        return _Header(size, False, size[0] * size[1])


_RADIANCE_SIGNATURES = (b"#?RGBE", b"#?RADIANCE")  # what OpenCV's HDR decoder takes
_RADIANCE_RESOLUTION = re.compile(rb"-Y\s*([-+]?\d+)\s*\+X\s*([-+]?\d+)")


def _radiance_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a Radiance HDR image as OpenCV's ``RGBE_ReadHeader`` reads it (lines of
    at most 127 bytes up to a blank one, a ``FORMAT=32-bit_rle_rgbe`` line among them, then
    ``-Y height +X width``), or ``None`` where its reading may differ."""
    stream = io.BytesIO(data)
    has_format = False
    line = stream.readline(127)  # fgets(buf, 128, fp)
    while line[:1] not in (b"\n", b"\0"):
        if not line:
            return None
        has_format = has_format or line == b"FORMAT=32-bit_rle_rgbe\n"
        line = stream.readline(127)
    found = _RADIANCE_RESOLUTION.match(stream.readline(127))
    if not has_format or found is None or int(found[1]) < 1 or int(found[2]) < 1:
        return None
    return int(found[2]), int(found[1])


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header alone (no decode), or ``None`` when unknown."""
    return _probe(data).size


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
    return _decode_probed(buffer, _probe(buffer), name=name, max_pixels=max_pixels)


_MAX_SIDE = 1 << 20
"""OpenCV's ``CV_IO_MAX_IMAGE_WIDTH``/``HEIGHT``: it raises on a longer side."""


def _decode_probed(buffer: bytes, header: _Header, name: str, max_pixels: int) -> np.ndarray:
    """:func:`decode_image_bytes` for non-empty bytes whose header :func:`_probe` has read."""
    size = header.size
    if header.refusal is not None:
        raise ImageDecodeError(header.refusal, path=name)
    if header.pixels is not None and header.pixels > max_pixels:
        what = f"{size[0]}x{size[1]}" if size else str(header.pixels)
        raise ImageDecodeError(f"image of {what} pixels exceeds the limit of {max_pixels} pixels", path=name)
    if size is not None and max(size) > _MAX_SIDE:
        raise ImageDecodeError(
            f"image of {size[0]}x{size[1]} pixels has a side longer than {_MAX_SIDE} pixels", path=name
        )
    image = _decode_jpeg(buffer) if header.plain_jpeg else None
    if image is None:  # other formats; JPEGs with an EXIF rotation, which OpenCV applies
        try:
            image = cv2.imdecode(np.frombuffer(buffer, dtype=np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:  # a header its own checks refuse
            image = None
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


def shrink_for_input(
    image: np.ndarray | ScaledImage, input_shape: tuple[int, int]
) -> np.ndarray | ScaledImage:
    """An image larger than its letterboxed size in ``input_shape``, resized to that size now.

    ``letterbox_into`` would make the same ``cv2.resize`` call later and skips it for pixels already
    that size, so the batch is bit for bit the same; a request then holds small images instead of
    whole decodes (64 PNGs of 64 M pixels each fit in 16 MB of request and would take 12 GB).

    Example:
        >>> shrunk = shrink_for_input(np.zeros((960, 1280, 3), np.uint8), (96, 96))
        >>> shrunk.pixels.shape, shrunk.original_shape
        ((72, 96, 3), (960, 1280))
    """
    from nexus.vision.letterbox import letterbox_geometry

    pixels, original_shape = pixels_and_shape(image)
    resized_h, resized_w = letterbox_geometry(original_shape, input_shape).resized_shape
    if pixels.shape[0] * pixels.shape[1] <= resized_h * resized_w:
        return image  # letterboxing keeps or enlarges it
    resized = cv2.resize(pixels, (resized_w, resized_h), interpolation=cv2.INTER_LINEAR)
    return ScaledImage(resized, original_shape)


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
    header = _probe(buffer)
    size = header.size
    if header.plain_jpeg and size is not None and 0 < size[0] * size[1] <= max_pixels:
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
    return _decode_probed(buffer, header, name=name, max_pixels=max_pixels)


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
