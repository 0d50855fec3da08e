"""The canonical on-disk dataset: an Ultralytics YOLO folder with a ``dataset.yaml``.

Layout::

    DIR/dataset.yaml          train: images/train, val: images/val, names: {0: circle, ...}, task
    DIR/images/<split>/*.jpg
    DIR/labels/<split>/*.txt  one row per object (box or polygon, normalized)

The YAML carries no ``path:`` key, so Ultralytics resolves the splits against the YAML's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nexus.datasets.images import image_size, list_images
from nexus.datasets.labels import LabelRow, label_path_for, read_label_file
from nexus.detections import Detections
from nexus.errors import DatasetError, ImageDecodeError

DATASET_YAML = "dataset.yaml"
SPLITS = ("train", "val", "test")
TASKS = ("detect", "segment")


def polygon_area(points: np.ndarray) -> float:
    """Area of a simple polygon given as ``(K, 2)`` points (shoelace formula).

    Example:
        >>> polygon_area(np.array([[0, 0], [4, 0], [4, 3], [0, 3]]))
        12.0
    """
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def parse_names(raw: Any, source: Path) -> dict[int, str]:
    """Class names from a YAML ``names`` value: a list, or a mapping ``{id: name}``.

    Example:
        >>> parse_names(["cat", "dog"], Path("data.yaml"))
        {0: 'cat', 1: 'dog'}
    """
    if isinstance(raw, list):
        return {i: str(name) for i, name in enumerate(raw)}
    if isinstance(raw, dict):
        try:
            return {int(k): str(v) for k, v in sorted(raw.items(), key=lambda kv: int(kv[0]))}
        except (TypeError, ValueError) as error:
            raise DatasetError("'names' keys must be integer class ids", path=source) from error
    raise DatasetError("'names' must be a list or a mapping {id: name}", path=source)


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Load a YAML file that must hold a mapping.

    Raises:
        DatasetError: unreadable, not YAML, or not a mapping.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DatasetError(f"cannot read YAML ({reason})", path=path) from error
    if not isinstance(data, dict):
        raise DatasetError("expected a YAML mapping with train/val/names keys", path=path)
    return data


@dataclass(frozen=True)
class YoloDataset:
    """An Ultralytics YOLO dataset on disk.

    Attributes:
        root: the folder that holds ``dataset.yaml`` (absolute).
        names: class id -> class name.
        splits: split name -> its images folder (absolute).
        task: ``"detect"`` (box rows) or ``"segment"`` (polygon rows).
        yaml_file: the YAML it was loaded from, when not ``root / "dataset.yaml"``.

    Example:
        >>> ds = YoloDataset.load("data/shapes")  # doctest: +SKIP
        >>> ds.names, len(ds.image_paths("val"))  # doctest: +SKIP
        ({0: 'circle', 1: 'rectangle', 2: 'triangle'}, 60)
    """

    root: Path
    names: dict[int, str]
    splits: dict[str, Path]
    task: str
    yaml_file: Path | None = field(default=None, compare=False, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> YoloDataset:
        """Open a dataset from its folder or its YAML file.

        Raises:
            DatasetError: the folder or YAML is missing, or the YAML lacks names or splits.
        """
        path = Path(path).expanduser()
        if not path.exists():
            raise DatasetError("no such dataset folder or file", path=path)
        yaml_path = path / DATASET_YAML if path.is_dir() else path
        if path.is_dir() and not yaml_path.is_file():
            candidates = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
            if len(candidates) != 1:
                raise DatasetError(f"no {DATASET_YAML} in this folder (run 'nexus data import')", path=path)
            yaml_path = candidates[0]
        data = read_yaml_mapping(yaml_path)
        if "names" not in data:
            raise DatasetError("missing 'names' (class id -> name)", path=yaml_path)
        names = parse_names(data["names"], yaml_path)
        if not names:
            raise DatasetError("'names' is empty; a dataset needs at least one class", path=yaml_path)
        root = yaml_path.parent.resolve()
        base = root
        if data.get("path"):
            base_path = Path(str(data["path"])).expanduser()
            base = base_path if base_path.is_absolute() else (root / base_path).resolve()
        splits: dict[str, Path] = {}
        for split in SPLITS:
            value = data.get(split)
            if value in (None, ""):
                continue
            if not isinstance(value, str):
                raise DatasetError(
                    f"'{split}' must be one images folder; lists and .txt files need 'nexus data import'",
                    path=yaml_path,
                )
            if value.endswith(".txt"):
                raise DatasetError(
                    f"'{split}: {value}' is an image list; convert it with 'nexus data import'",
                    path=yaml_path,
                )
            split_path = Path(value).expanduser()
            splits[split] = split_path if split_path.is_absolute() else (base / split_path).resolve()
        if "train" not in splits or "val" not in splits:
            raise DatasetError("needs both 'train' and 'val' image folders", path=yaml_path)
        task = str(data.get("task") or "")
        if task and task not in TASKS:
            raise DatasetError(f"task {task!r} is not one of {', '.join(TASKS)}", path=yaml_path)
        dataset = cls(root=root, names=names, splits=splits, task=task or "detect", yaml_file=yaml_path)
        if not task:
            dataset = cls(root, names, splits, dataset._guess_task(), yaml_file=yaml_path)
        return dataset

    def _guess_task(self) -> str:
        for split in self.splits:
            for image in self.image_paths(split)[:20]:
                try:
                    rows = read_label_file(self.label_path(image))
                except DatasetError:
                    continue
                if any(row.is_polygon for row in rows):
                    return "segment"
        return "detect"

    @property
    def yaml_path(self) -> Path:
        """The dataset's YAML file (``root / "dataset.yaml"`` unless it was loaded from another name)."""
        return self.yaml_file.resolve() if self.yaml_file is not None else self.root / DATASET_YAML

    def _split_dir(self, split: str) -> Path:
        if split not in self.splits:
            known = ", ".join(self.splits)
            raise DatasetError(f"no split {split!r} (this dataset has: {known})", path=self.yaml_path)
        return self.splits[split]

    def image_paths(self, split: str) -> list[Path]:
        """The split's image files, sorted.

        Raises:
            DatasetError: the dataset has no such split.
        """
        return list_images(self._split_dir(split))

    def label_path(self, image_path: Path) -> Path:
        """The label file of one of this dataset's images (it may not exist: a background image)."""
        return label_path_for(Path(image_path))

    def read_rows(self, image_path: Path) -> list[LabelRow]:
        """The parsed label rows of an image (empty for a background image)."""
        return read_label_file(self.label_path(image_path))

    def read_annotations(self, image_path: Path, with_masks: bool = False) -> Detections:
        """Ground truth of one image in pixels.

        Boxes of polygon rows are the polygon's extent (as Ultralytics derives them). When any row is a
        polygon, ``data["polygon"]`` holds each object's ``(K, 2)`` float32 pixel points (a box row
        gives its four corners).

        Args:
            image_path: one of the dataset's images.
            with_masks: also rasterize ``(N, H, W)`` masks (polygons, or the box for box rows).

        Raises:
            DatasetError: the image cannot be read or a label row is malformed.

        Example:
            >>> ds.read_annotations(ds.image_paths("val")[0]).class_id  # doctest: +SKIP
            array([2, 0])
        """
        from nexus.vision.masks import polygon_to_mask

        image_path = Path(image_path)
        rows = self.read_rows(image_path)
        try:
            width, height = image_size(image_path)
        except ImageDecodeError as error:
            raise DatasetError(str(error)) from error
        scale = np.array([width, height], dtype=np.float64)
        polygons = [row.polygon_normalized() * scale for row in rows]
        boxes = np.array([row.xyxy_normalized() for row in rows], dtype=np.float64).reshape(-1, 4)
        boxes *= np.tile(scale, 2)
        data: dict[str, Any] = {}
        if any(row.is_polygon for row in rows):
            data["polygon"] = [p.astype(np.float32) for p in polygons]
        mask = None
        if with_masks:
            mask = np.zeros((len(rows), height, width), dtype=bool)
            for i, polygon in enumerate(polygons):
                mask[i] = polygon_to_mask(polygon, (height, width))
        return Detections(
            xyxy=boxes.astype(np.float32),
            class_id=np.array([row.class_id for row in rows], dtype=np.int64),
            mask=mask,
            data=data,
        )

    def to_coco(self, split: str, with_segmentation: bool = True) -> dict[str, Any]:
        """The split's ground truth as a COCO dict.

        Image ids are ``1..N`` in :meth:`image_paths` order, ``file_name`` is relative to the split's
        images folder, ``category_id`` is ``class_id + 1``. Polygon rows give ``segmentation``
        polygons and the polygon's area; box rows give the box area (and, in a segment dataset, the
        box as a 4-point polygon).

        Example:
            >>> coco = ds.to_coco("val")  # doctest: +SKIP
            >>> coco["categories"][0]  # doctest: +SKIP
            {'id': 1, 'name': 'circle', 'supercategory': ''}
        """
        split_dir = self._split_dir(split)
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for image_id, image_path in enumerate(self.image_paths(split), start=1):
            try:
                width, height = image_size(image_path)
            except ImageDecodeError as error:
                raise DatasetError(str(error)) from error
            images.append(
                {
                    "id": image_id,
                    "file_name": image_path.relative_to(split_dir).as_posix(),
                    "width": width,
                    "height": height,
                }
            )
            scale = np.array([width, height], dtype=np.float64)
            for row in self.read_rows(image_path):
                x1, y1, x2, y2 = (
                    v * s for v, s in zip(row.xyxy_normalized(), np.tile(scale, 2), strict=True)
                )
                points = row.polygon_normalized() * scale
                entry: dict[str, Any] = {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": row.class_id + 1,
                    "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                    "area": round(polygon_area(points) if row.is_polygon else (x2 - x1) * (y2 - y1), 3),
                    "iscrowd": 0,
                }
                if with_segmentation and (row.is_polygon or self.task == "segment"):
                    entry["segmentation"] = [[round(float(v), 3) for v in points.ravel()]]
                annotations.append(entry)
        categories = [
            {"id": k + 1, "name": name, "supercategory": ""} for k, name in sorted(self.names.items())
        ]
        return {
            "info": {"description": f"{self.root.name} ({split})"},
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
