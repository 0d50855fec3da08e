"""The GPU request path for ``.pt`` models: JPEG decode, letterbox and inference all on the device.

JPEG bytes go through ``torchvision.io.decode_jpeg(..., device="cuda")`` (nvJPEG), the letterbox is
a bilinear ``interpolate`` + pad in torch, and the FP16 model runs through ``TorchBackend.infer_tensor``
(CUDA graphs). Only the raw head outputs come back to the CPU for NMS. Every function also runs on
CPU tensors, which is how it is unit-tested without a GPU.

Example:
    >>> pipeline = GpuPipeline(Detector.from_path("best.pt", device="0"))  # doctest: +SKIP
    >>> pipeline.run([pipeline.decode_jpeg(jpeg_bytes)], [PostprocessOptions()])  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nexus.detections import Detections
from nexus.errors import ImageDecodeError
from nexus.inference.detector import Detector
from nexus.vision.image_io import MAX_IMAGE_PIXELS, _header_size
from nexus.vision.letterbox import PAD_VALUE, LetterboxGeometry, letterbox_geometry
from nexus.vision.postprocess import PostprocessOptions


def decode_jpeg_tensor(
    data: bytes,
    device: torch.device | str = "cuda",
    name: str = "<bytes>",
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> torch.Tensor:
    """Decode JPEG bytes into a ``(3, H, W)`` RGB ``uint8`` tensor on ``device``.

    Raises:
        ImageDecodeError: empty, corrupt, truncated or oversized JPEG.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    if not data:
        raise ImageDecodeError("empty image data", path=name)
    size = _header_size(data)
    if size is None:
        raise ImageDecodeError("not a decodable image (corrupt, truncated or unsupported format)", path=name)
    if size[0] * size[1] > max_pixels:
        raise ImageDecodeError(
            f"image of {size[0]}x{size[1]} pixels exceeds the limit of {max_pixels} pixels", path=name
        )
    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as error:
        raise ImageDecodeError(f"not a decodable JPEG ({str(error)[:80]})", path=name) from error


def letterbox_tensors(
    images: Sequence[torch.Tensor],
    new_shape: tuple[int, int],
    auto: bool = False,
    stride: int = 32,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, list[LetterboxGeometry]]:
    """Letterbox ``(3, H, W)`` RGB ``uint8`` tensors into one ``(B, 3, h, w)`` batch scaled to ``[0, 1]``.

    Same geometry as the CPU ``letterbox_batch`` (bilinear resize, pad value 114, minimum rectangle
    only when all images share a shape); pixel values agree to rounding.
    """
    auto = auto and len({tuple(image.shape) for image in images}) == 1
    geometries = [
        letterbox_geometry((int(i.shape[1]), int(i.shape[2])), new_shape, auto=auto, stride=stride)
        for i in images
    ]
    input_h, input_w = geometries[0].input_shape
    device = images[0].device
    batch = torch.full((len(images), 3, input_h, input_w), PAD_VALUE / 255, dtype=dtype, device=device)
    for index, (image, geometry) in enumerate(zip(images, geometries, strict=True)):
        resized_h, resized_w = geometry.resized_shape
        pixels = image.unsqueeze(0).float()
        if (int(image.shape[1]), int(image.shape[2])) != (resized_h, resized_w):
            pixels = F.interpolate(pixels, size=(resized_h, resized_w), mode="bilinear", align_corners=False)
            pixels = pixels.round_().clamp_(0, 255)
        top, left = geometry.top, geometry.left
        batch[index, :, top : top + resized_h, left : left + resized_w] = (pixels[0] / 255).to(dtype)
    return batch, geometries


class GpuPipeline:
    """Decode, letterbox and infer on the model's device; NMS on the CPU.

    Args:
        detector: a ``Detector`` over a ``TorchBackend`` (``.pt`` weights).
        imgsz: network input size; the model's own when ``None``.
    """

    def __init__(self, detector: Detector, imgsz: int | None = None) -> None:
        backend = detector.backend
        if not hasattr(backend, "infer_tensor"):
            raise ValueError("the GPU pipeline needs a TorchBackend (.pt weights)")
        self.detector = detector
        self.backend: Any = backend
        self.device = backend.device
        self.dtype = torch.float16 if backend.half else torch.float32
        metadata = detector.metadata
        size = metadata.imgsz if imgsz is None else (imgsz, imgsz)
        stride = metadata.stride
        self.input_shape = (math.ceil(size[0] / stride) * stride, math.ceil(size[1] / stride) * stride)

    def decode_jpeg(
        self, data: bytes, name: str = "<bytes>", max_pixels: int = MAX_IMAGE_PIXELS
    ) -> torch.Tensor:
        """Decode one JPEG on the model's device (nvJPEG on CUDA)."""
        return decode_jpeg_tensor(data, device=self.device, name=name, max_pixels=max_pixels)

    def _as_tensor(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(image, torch.Tensor):
            return image.to(self.device)
        rgb = np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1))  # BGR HWC -> RGB CHW
        return torch.from_numpy(rgb).to(self.device, non_blocking=True)

    def run(
        self, images: Sequence[np.ndarray | torch.Tensor], options: Sequence[PostprocessOptions]
    ) -> list[Detections]:
        """One batch: images as device tensors (``decode_jpeg``) or BGR arrays; per-image options."""
        tensors = [self._as_tensor(image) for image in images]
        # A fixed input shape and power-of-two batch sizes bound the number of captured CUDA graphs.
        batch, geometries = letterbox_tensors(
            tensors, self.input_shape, auto=False, stride=self.detector.metadata.stride, dtype=self.dtype
        )
        count = len(tensors)
        bucket = 1 << (count - 1).bit_length()
        if bucket != count:
            padding = batch.new_full((bucket - count, *batch.shape[1:]), PAD_VALUE / 255)
            batch = torch.cat([batch, padding])
        batch = batch.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else batch
        predictions, protos = self.backend.infer_tensor(batch)
        predictions = predictions[:count]
        protos = None if protos is None else protos[:count]
        return self.detector.postprocess(
            predictions.float().cpu().numpy(),
            None if protos is None else protos.float().cpu().numpy(),
            geometries,
            list(options),
        )
