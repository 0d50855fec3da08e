"""A deterministic synthetic shapes dataset (circles, rectangles, triangles) for training and tests.

Every image is drawn from ``numpy.random.default_rng([seed, index])``, so the same seed gives
byte-identical files, and the first N images do not depend on how many are asked for. Shapes are
filled polygons (a circle is a 32-gon) whose outline is also the label, so the data serves both
detection and segmentation. Each shape's colour keeps a clear distance from the pixels around it, and
a shape is never placed so that it hides most of an earlier one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from nexus.datasets.writer import Annotation, Sample, write_dataset
from nexus.datasets.yolo import YoloDataset
from nexus.errors import DatasetError

CLASS_NAMES = ("circle", "rectangle", "triangle")
"""Class names of the synthetic dataset, by class id."""

CIRCLE_POINTS = 32
JPEG_QUALITY = 95
MIN_SIZE, MAX_SIZE = 0.1, 0.45  # shape extent (longer box side) as a fraction of the image side
# Extents are drawn as MIN + (MAX - MIN) * sqrt(u): small shapes stay rare (about 1 in 50 is under
# 15% of the side), because YOLOv8n at 160 px, trained 30 epochs with mosaic, found only ~20% of those.
MAX_OBJECTS = 6
MAX_IOU = 0.3  # against every earlier shape
MAX_HIDDEN = 0.25  # fraction of an earlier shape's box the new shape may cover
MIN_COLOR_DISTANCE = 120.0  # RGB Euclidean distance to 95% of the pixels around the shape
_RING_KERNEL = np.ones((7, 7), np.uint8)  # the 3 pixels around a shape must contrast with it
_PLACEMENT_TRIES = 40
_COLOR_TRIES = 40


@dataclass(frozen=True)
class SynthConfig:
    """How many images to draw, and how.

    Attributes:
        images: total number of images (train + val).
        seed: random seed; the same seed gives byte-identical files.
        imgsz: side of the square images in pixels.
        val_fraction: share of the images that go to ``val``.

    Example:
        >>> SynthConfig(images=12, val_fraction=0.25).val_images
        3
    """

    images: int = 360
    seed: int = 0
    imgsz: int = 160
    val_fraction: float = 1 / 6

    def __post_init__(self) -> None:
        if self.images < 2:
            raise DatasetError(f"images={self.images}: set images to 2 or more (one train and one val)")
        if not 32 <= self.imgsz <= 4096:
            raise DatasetError(f"imgsz={self.imgsz}: set imgsz between 32 and 4096 pixels")
        if not 0.0 < self.val_fraction < 1.0:
            raise DatasetError(f"val_fraction={self.val_fraction}: set val_fraction above 0 and below 1")
        if self.seed < 0:
            raise DatasetError(f"seed={self.seed}: set seed to 0 or a positive integer")

    @property
    def val_images(self) -> int:
        """Images in ``val``: ``round(images * val_fraction)``, at least 1, leaving 1 for train."""
        return min(max(1, round(self.images * self.val_fraction)), self.images - 1)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = int(rng.integers(3))
    if kind == 0:  # solid
        image = np.empty((size, size, 3), np.float32)
        image[:] = rng.integers(0, 256, 3)
    elif kind == 1:  # linear gradient between two colours
        start, end = rng.integers(0, 256, (2, 3)).astype(np.float32)
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        t = xs * math.cos(angle) + ys * math.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        image = start + (end - start) * t[..., None]
    else:  # pixel noise around a base colour with a gentle drift (no blobs that could pass for shapes)
        base = rng.integers(0, 256, 3).astype(np.float32)
        coarse = (base + rng.uniform(-20, 20, (3, 3, 3))).astype(np.float32)
        image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR)
        image += rng.normal(0, 10, (size, size, 3)).astype(np.float32)
    return np.clip(image, 0, 255)


def _shape(rng: np.random.Generator, class_id: int, extent: float) -> np.ndarray:
    """``(K, 2)`` points of a shape centred on its box, scaled so its longer box side is ``extent``."""
    if class_id == 0:
        theta = np.linspace(0, 2 * math.pi, CIRCLE_POINTS, endpoint=False)
        points = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    elif class_id == 1:
        w, h = 1.0, rng.uniform(0.5, 1.0)
        if rng.random() < 0.5:
            w, h = h, w
        angle = math.radians(rng.uniform(-20, 20))
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        points = (np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2) @ rotation.T
    else:
        theta = rng.uniform(0, 2 * math.pi) + np.radians([0, 120, 240]) + np.radians(rng.uniform(-8, 8, 3))
        points = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    low, high = points.min(axis=0), points.max(axis=0)
    return (points - (low + high) / 2) * (extent / float((high - low).max()))


def _box_overlap_ok(box: np.ndarray, earlier: list[np.ndarray]) -> bool:
    area = (box[2] - box[0]) * (box[3] - box[1])
    for other in earlier:
        iw = min(box[2], other[2]) - max(box[0], other[0])
        ih = min(box[3], other[3]) - max(box[1], other[1])
        if iw <= 0 or ih <= 0:
            continue
        inter = iw * ih
        other_area = (other[2] - other[0]) * (other[3] - other[1])
        if inter / (area + other_area - inter) > MAX_IOU or inter / other_area > MAX_HIDDEN:
            return False
    return True


def _fill(image: np.ndarray, points: np.ndarray, color: tuple[float, ...]) -> None:
    # Pixel (i, j) spans [i, i+1); OpenCV samples at integer coordinates, hence the half-pixel shift.
    fixed = np.round((points - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(image, [fixed], color, lineType=cv2.LINE_AA, shift=4)


def _pick_color(rng: np.random.Generator, around: np.ndarray) -> tuple[float, ...]:
    """A colour far from (nearly) all the pixels just outside the shape, so its edge shows."""
    best, best_distance = None, -1.0
    for _ in range(_COLOR_TRIES):
        color = rng.integers(0, 256, 3).astype(np.float32)
        distance = float(np.percentile(np.linalg.norm(around - color, axis=1), 5))
        if distance > best_distance:
            best, best_distance = color, distance
        if distance >= MIN_COLOR_DISTANCE:
            break
    assert best is not None
    return tuple(float(c) for c in best)


def draw_image(seed: int, index: int, imgsz: int) -> tuple[np.ndarray, list[Annotation]]:
    """Draw one synthetic image (BGR ``uint8``) and its objects.

    Example:
        >>> image, objects = draw_image(seed=0, index=0, imgsz=64)
        >>> image.shape, 1 <= len(objects) <= 6
        ((64, 64, 3), True)
    """
    rng = np.random.default_rng([seed, index])
    image = _background(rng, imgsz)
    annotations: list[Annotation] = []
    boxes: list[np.ndarray] = []
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        class_id = int(rng.integers(len(CLASS_NAMES)))
        extent = MIN_SIZE + (MAX_SIZE - MIN_SIZE) * math.sqrt(rng.random())
        shape = _shape(rng, class_id, extent * imgsz)
        low, high = shape.min(axis=0), shape.max(axis=0)
        for _ in range(_PLACEMENT_TRIES):
            center = rng.uniform(1 - low, imgsz - 1 - high)
            points = shape + center
            box = np.concatenate([points.min(axis=0), points.max(axis=0)])
            if _box_overlap_ok(box, boxes):
                break
        else:
            continue
        mask = np.zeros((imgsz, imgsz), np.uint8)
        _fill(mask, points, (1,))
        ring = cv2.dilate(mask, _RING_KERNEL) > mask
        if not mask.any() or not ring.any():
            continue
        _fill(image, points, _pick_color(rng, image[ring]))
        boxes.append(box)
        annotations.append(Annotation(class_id, tuple(float(v) for v in box), points))  # type: ignore[arg-type]
    return np.clip(np.round(image), 0, 255).astype(np.uint8), annotations


def _sample(config: SynthConfig, index: int) -> Sample:
    image, annotations = draw_image(config.seed, index, config.imgsz)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
        raise DatasetError("OpenCV could not encode a JPEG")
    return Sample(
        image=encoded.tobytes(),
        file_name=f"shapes_{index:05d}.jpg",
        annotations=tuple(annotations),
        size=(config.imgsz, config.imgsz),
    )


def synthesize_dataset(out_dir: str | Path, config: SynthConfig, *, overwrite: bool = False) -> YoloDataset:
    """Draw ``config.images`` shape images and write them as a YOLO segment dataset.

    Images ``0 .. n_train-1`` go to ``train``, the rest to ``val``.

    Args:
        out_dir: the output folder; must be new or empty unless ``overwrite``.
        config: how many images, seed, size and val share.
        overwrite: replace the dataset in a non-empty folder (other files are kept).

    Raises:
        DatasetError: the output folder is not empty (and ``overwrite`` is not set).

    Example:
        >>> ds = synthesize_dataset("data/shapes", SynthConfig(images=360, seed=0))  # doctest: +SKIP
        >>> len(ds.image_paths("train")), len(ds.image_paths("val"))  # doctest: +SKIP
        (300, 60)
    """
    n_train = config.images - config.val_images
    samples = {  # generators: images are drawn and encoded one at a time, as they are written
        "train": (_sample(config, index) for index in range(n_train)),
        "val": (_sample(config, index) for index in range(n_train, config.images)),
    }
    names = dict(enumerate(CLASS_NAMES))
    return write_dataset(out_dir, names, "segment", samples, overwrite=overwrite)
