"""Per-image statistics for drift: one table row per image, plus its embedding.

Columns (``STAT_COLUMNS``; box and prediction columns only where they exist):

========================  ==========================================================================
``brightness``            mean of the grayscale image (0-255)
``contrast``              standard deviation of the grayscale image
``sharpness``             variance of the grayscale Laplacian (``cv2.Laplacian``); falls with blur
``width``, ``height``     pixels, after EXIF rotation
``aspect_ratio``          width / height
``mean_red`` ...          per-channel means (0-255)
``box_count``             labelled objects (datasets only)
``box_area_mean``         mean labelled box area as a fraction of the image (NaN without boxes)
``pred_count``            detections above the confidence threshold (with a model)
``pred_conf_mean/max``    mean and max confidence of those detections (0 without detections)
========================  ==========================================================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from nexus.datasets.images import list_images
from nexus.datasets.labels import label_path_for, read_label_file
from nexus.datasets.yolo import DATASET_YAML, YoloDataset
from nexus.detections import Detections
from nexus.drift.embeddings import ImageEncoder
from nexus.errors import DatasetError, ImageDecodeError
from nexus.vision.image_io import load_image

logger = logging.getLogger("nexus.drift")

PIXEL_COLUMNS = (
    "brightness", "contrast", "sharpness", "width", "height", "aspect_ratio",
    "mean_red", "mean_green", "mean_blue",
)  # fmt: skip
BOX_COLUMNS = ("box_count", "box_area_mean")
PREDICTION_COLUMNS = ("pred_count", "pred_conf_mean", "pred_conf_max")
STAT_COLUMNS = PIXEL_COLUMNS + BOX_COLUMNS + PREDICTION_COLUMNS


@dataclass(frozen=True)
class ImageSet:
    """The images of one side of a comparison.

    Attributes:
        path: what the user named (a dataset folder or YAML, or a folder of images).
        images: the image files, sorted.
        labelled: whether the images come from a dataset (so box statistics apply).
        description: ``dataset DIR (split train)`` or ``image folder DIR``, for messages and reports.

    Example:
        >>> ImageSet.open("data/shapes", split="train").description  # doctest: +SKIP
        'dataset /abs/data/shapes (split train)'
    """

    path: Path
    images: list[Path]
    labelled: bool
    description: str

    @classmethod
    def open(cls, path: str | Path, split: str | None = None) -> ImageSet:
        """A dataset's split (all splits when ``split`` is ``None``) or every image under a folder.

        A folder counts as a dataset when it holds ``dataset.yaml`` (or a single other YAML file);
        a YAML file is opened as a dataset. ``split`` is ignored for a plain folder of images.

        Raises:
            DatasetError: the path is missing, the dataset is malformed or has no such split, or no
                image files were found.
        """
        path = Path(path).expanduser()
        if not path.exists():
            raise DatasetError("no such dataset or image folder", path=path)
        yamls = [path] if path.is_file() else [*path.glob("*.yaml"), *path.glob("*.yml")]
        if path.is_file() and path.suffix.lower() not in (".yaml", ".yml"):
            raise DatasetError("expected a dataset folder, its YAML file, or a folder of images", path=path)
        if path.is_file() or (path / DATASET_YAML).is_file() or len(yamls) == 1:
            dataset = YoloDataset.load(path)
            splits = [split] if split else list(dataset.splits)
            images = sorted({image for name in splits for image in dataset.image_paths(name)})
            where = f"split {split}" if split else f"splits {', '.join(splits)}"
            image_set = cls(path, images, True, f"dataset {dataset.root} ({where})")
        else:
            image_set = cls(path, list_images(path), False, f"image folder {path.resolve()}")
        if not image_set.images:
            raise DatasetError(f"no image files in {image_set.description}", path=path)
        return image_set


@dataclass
class ImageTable:
    """Statistics and embeddings of the readable images of an ``ImageSet``.

    Attributes:
        stats: one row per image, columns from ``STAT_COLUMNS``; the index is the image path.
        embeddings: ``(rows, dim)`` float32, in the same order.
        skipped: ``"path: reason"`` for each image that could not be decoded.
    """

    stats: pd.DataFrame
    embeddings: np.ndarray
    skipped: list[str] = field(default_factory=list)


def pixel_statistics(image: np.ndarray) -> dict[str, float]:
    """Brightness, contrast, sharpness, size and colour means of a BGR ``uint8`` image.

    Example:
        >>> stats = pixel_statistics(np.full((10, 20, 3), 100, np.uint8))
        >>> stats["brightness"], stats["sharpness"], stats["aspect_ratio"]
        (100.0, 0.0, 2.0)
    """
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    height, width = gray.shape
    blue, green, red = (float(image[..., c].mean()) for c in range(3))
    return {
        "brightness": float(gray.mean()),
        "contrast": float(gray.std()),
        "sharpness": float(cv2.Laplacian(gray, cv2.CV_64F).var()),
        "width": float(width),
        "height": float(height),
        "aspect_ratio": width / height,
        "mean_red": red,
        "mean_green": green,
        "mean_blue": blue,
    }


def box_statistics(image_path: Path) -> dict[str, float]:
    """Object count and mean normalized box area from the image's YOLO label file.

    Raises:
        DatasetError: a label row is malformed (naming ``file:line``).

    Example:
        >>> box_statistics(Path("/nonexistent/images/a.jpg"))
        {'box_count': 0.0, 'box_area_mean': nan}
    """
    rows = read_label_file(label_path_for(image_path))
    areas = [(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in (row.xyxy_normalized() for row in rows)]
    return {"box_count": float(len(rows)), "box_area_mean": float(np.mean(areas)) if areas else float("nan")}


def prediction_statistics(detections: Detections) -> dict[str, float]:
    """Detection count and mean/max confidence (0 when nothing was detected).

    Example:
        >>> prediction_statistics(Detections(xyxy=[[0, 0, 1, 1], [1, 1, 2, 2]], confidence=[0.5, 0.9]))
        {'pred_count': 2.0, 'pred_conf_mean': 0.7, 'pred_conf_max': 0.9}
    """
    confidence = detections.confidence if detections.confidence is not None else np.zeros(0)
    if len(confidence) == 0:
        return {"pred_count": 0.0, "pred_conf_mean": 0.0, "pred_conf_max": 0.0}
    return {
        "pred_count": float(len(confidence)),
        "pred_conf_mean": round(float(confidence.mean()), 6),
        "pred_conf_max": round(float(confidence.max()), 6),
    }


def describe_images(
    image_set: ImageSet, encoder: ImageEncoder | None = None, max_images: int | None = None
) -> ImageTable:
    """Statistics and embeddings of every readable image; undecodable files are skipped and logged.

    Args:
        image_set: the images (and whether they have labels).
        encoder: embeds the images (and runs the model, if it has one); pixel embeddings by default.
        max_images: use at most this many images, evenly spaced over the sorted list.

    Example:
        >>> table = describe_images(ImageSet.open("data/shapes", "val"))  # doctest: +SKIP
        >>> table.stats[["brightness", "box_count"]].shape  # doctest: +SKIP
        (60, 2)
    """
    encoder = encoder or ImageEncoder()
    images = image_set.images
    if max_images is not None and len(images) > max_images:
        images = [images[int(i)] for i in np.linspace(0, len(images) - 1, max_images).round()]
    rows: list[dict[str, float]] = []
    vectors: list[np.ndarray] = []
    used: list[str] = []
    skipped: list[str] = []
    for path in images:
        try:
            image = load_image(path)
        except ImageDecodeError as error:
            logger.warning("skipping unreadable image %s", error)
            skipped.append(str(error))
            continue
        row = pixel_statistics(image)
        if image_set.labelled:
            row.update(box_statistics(path))
        vector, detections = encoder(image)
        if detections is not None:
            row.update(prediction_statistics(detections))
        rows.append(row)
        vectors.append(vector)
        used.append(str(path))
    stats = pd.DataFrame(rows, index=pd.Index(used, name="image"))
    embeddings = np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)
    return ImageTable(stats=stats, embeddings=embeddings, skipped=skipped)
