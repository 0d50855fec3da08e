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
from nexus.vision.postprocess import PostprocessOptions, decode_predictions

LETTERBOX_CHUNK = 16
"""Images resized in one call; 16 720p frames make a 177 MB FP32 intermediate."""


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
    # Images of one shape share a geometry: resize them together (a few kernel launches per group, not
    # per image), in chunks that bound the FP32 copy of the group.
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(index)
    for indices in groups.values():
        geometry = geometries[indices[0]]
        resized_h, resized_w = geometry.resized_shape
        top, left = geometry.top, geometry.left
        for start in range(0, len(indices), LETTERBOX_CHUNK):
            chunk = indices[start : start + LETTERBOX_CHUNK]
            pixels = torch.stack([images[index] for index in chunk]).float()
            if tuple(pixels.shape[2:]) != (resized_h, resized_w):
                pixels = F.interpolate(
                    pixels, size=(resized_h, resized_w), mode="bilinear", align_corners=False
                )
                pixels = pixels.round_().clamp_(0, 255)
            contiguous = chunk[-1] - chunk[0] == len(chunk) - 1
            rows = slice(chunk[0], chunk[-1] + 1) if contiguous else torch.tensor(chunk, device=device)
            batch[rows, :, top : top + resized_h, left : left + resized_w] = (pixels / 255).to(dtype)
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
        rows = [
            decode_predictions(candidates, self.detector.metadata.num_classes, image_options)[0]
            for candidates, image_options in zip(
                candidate_columns(predictions[:count], self.detector.metadata.num_classes, options),
                options,
                strict=True,
            )
        ]
        return self.detector.detections_from_rows(
            rows, None if protos is None else protos[:count].float().cpu().numpy(), geometries
        )


def candidate_columns(
    predictions: torch.Tensor, num_classes: int, options: Sequence[PostprocessOptions]
) -> list[np.ndarray]:
    """Per image, the head-output columns whose best class score may pass its confidence threshold,
    as ``(1, channels, n)`` FP32 arrays for ``decode_predictions``.

    Only these leave the device: a 640 px YOLOv8n batch of 64 is 180 MB of raw FP32 output, a few
    hundred candidates are kilobytes. ``decode_predictions`` then keeps exactly what it would have
    kept from the whole output.

    Example:
        >>> rows = candidate_columns(torch.zeros(2, 6, 10), 2, [PostprocessOptions()] * 2)
        >>> [r.shape for r in rows]
        [(1, 6, 0), (1, 6, 0)]
    """
    best = predictions[:, 4 : 4 + num_classes].amax(dim=1).float()
    # One float32 step below each threshold: a superset of what decode_predictions keeps however
    # the threshold is rounded; it applies the exact test itself.
    thresholds = np.array([o.conf_threshold for o in options], np.float32)
    floors = torch.from_numpy(np.nextafter(thresholds, np.float32(-np.inf))).to(best.device)
    keep = best >= floors[:, None]
    counts = keep.sum(dim=1).tolist()
    columns = predictions.transpose(1, 2)[keep].float().cpu().numpy()
    return [part.T[None] for part in np.split(columns, np.cumsum(counts)[:-1])]
