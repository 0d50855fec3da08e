"""COCO JSON: read a COCO export into samples, and export a YOLO dataset split as COCO.

Reading handles boxes, polygon and RLE segmentations (RLE outlines are traced), skips ``iscrowd``
entries, maps categories sorted by id to class ids ``0..n-1`` keeping their names, and finds each
image by its relative path or, failing that, by its base name (Label Studio writes names such as
``/data/upload/1/abc.jpg``; CVAT and Label Studio put the files under ``images/``).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from nexus.datasets.images import list_images
from nexus.datasets.writer import Annotation, Sample
from nexus.datasets.yolo import YoloDataset
from nexus.errors import DatasetError


@dataclass(frozen=True)
class CocoSource:
    """Class names and samples read from one COCO JSON.

    Attributes:
        names: class id -> category name (categories sorted by id).
        category_ids: the COCO category id of each class id.
        samples: one per image entry, in the JSON's order.
    """

    names: dict[int, str]
    category_ids: dict[int, int]
    samples: list[Sample]


def load_coco_json(path: Path) -> dict[str, Any]:
    """Read a COCO JSON file; it must hold ``images`` and ``categories`` lists.

    Raises:
        DatasetError: unreadable, not JSON, or not COCO-shaped.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"cannot read COCO JSON ({error})", path=path) from error
    if not is_coco_dict(data):
        raise DatasetError("not a COCO file: needs 'images' and 'categories' lists", path=path)
    return data


def is_coco_dict(data: Any) -> bool:
    """True for a dict with ``images`` and ``categories`` lists.

    Example:
        >>> is_coco_dict({"images": [], "categories": []}), is_coco_dict([])
        (True, False)
    """
    return (
        isinstance(data, dict)
        and isinstance(data.get("images"), list)
        and isinstance(data.get("categories"), list)
    )


def merge_polygons(parts: list[np.ndarray]) -> np.ndarray:
    """Join several ``(K, 2)`` outlines of one object into one polygon.

    Each part starts at its point nearest the previous part's end, so the joins are short; the
    result spans the same extent as the parts.

    Example:
        >>> a = np.array([[0, 0], [2, 0], [2, 2]]); b = np.array([[5, 5], [6, 5], [6, 6]])
        >>> merge_polygons([a, b]).shape
        (6, 2)
    """
    parts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in parts if len(p) >= 3]
    if not parts:
        return np.zeros((0, 2))
    merged = [parts[0]]
    for part in parts[1:]:
        start = int(np.argmin(np.linalg.norm(part - merged[-1][-1], axis=1)))
        merged.append(np.roll(part, -start, axis=0))
    return np.concatenate(merged)


def mask_to_polygon(mask: np.ndarray) -> np.ndarray:
    """Outline(s) of a bool mask as one ``(K, 2)`` polygon through the border pixels' centres."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    parts = [c.reshape(-1, 2).astype(np.float64) + 0.5 for c in contours if len(c) >= 3]
    parts.sort(key=lambda p: -cv2.contourArea(p.astype(np.float32)))
    return merge_polygons(parts)


def _annotation(entry: dict[str, Any], class_id: int, image: dict[str, Any], where: str) -> Annotation | None:
    from nexus.vision.masks import decode_segmentation

    polygon: np.ndarray | None = None
    segmentation = entry.get("segmentation")
    if isinstance(segmentation, list) and segmentation:
        if all(isinstance(v, (int, float)) for v in segmentation):
            segmentation = [segmentation]
        parts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in segmentation if len(p) >= 6]
        polygon = merge_polygons(parts) if parts else None
    elif isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size") or [image.get("height"), image.get("width")]
        try:
            mask = decode_segmentation(segmentation, (int(size[0]), int(size[1])))
        except Exception as error:
            raise DatasetError(
                f"annotation {entry.get('id')}: bad RLE segmentation ({error})", path=where
            ) from error
        traced = mask_to_polygon(mask)
        polygon = traced if len(traced) >= 3 else None
    bbox = entry.get("bbox")
    if bbox is not None and bbox != []:
        try:
            if not isinstance(bbox, list) or len(bbox) != 4 or any(isinstance(v, bool) for v in bbox):
                raise ValueError
            x, y, w, h = (float(v) for v in bbox)
            if not all(math.isfinite(v) for v in (x, y, w, h)):
                raise ValueError
        except (TypeError, ValueError):
            raise DatasetError(
                f"annotation {entry.get('id')}: bbox must be 4 numbers [x, y, width, height], got {bbox!r}",
                path=where,
            ) from None
        xyxy = (x, y, x + w, y + h)
    elif polygon is not None:
        xyxy = (*polygon.min(axis=0).tolist(), *polygon.max(axis=0).tolist())
    else:
        raise DatasetError(f"annotation {entry.get('id')}: no bbox and no segmentation", path=where)
    if xyxy[2] <= xyxy[0] or xyxy[3] <= xyxy[1]:
        return None
    return Annotation(class_id, xyxy, polygon)  # type: ignore[arg-type]


class ImageFinder:
    """Find image files by a path relative to some folders, else by base name under a root.

    Example:
        >>> finder = ImageFinder(Path("export"), [Path("export/images")])  # doctest: +SKIP
        >>> finder.find("/data/upload/1/abc.jpg")  # doctest: +SKIP
        PosixPath('export/images/abc.jpg')
    """

    def __init__(self, search_root: Path, bases: list[Path]) -> None:
        self.bases = bases
        self.search_root = search_root
        self._by_name: dict[str, list[Path]] | None = None

    def find(self, file_name: str) -> Path | None:
        relative = file_name.replace("\\", "/").lstrip("/")
        for base in self.bases:
            candidate = base / relative
            if candidate.is_file():
                return candidate
        if self._by_name is None:
            self._by_name = defaultdict(list)
            for path in list_images(self.search_root):
                self._by_name[path.name.lower()].append(path)
        matches = self._by_name.get(os.path.basename(relative).lower(), [])
        if len(matches) > 1:  # prefer the match sharing the longest path tail
            parts = Path(relative).parts

            def shared_tail(path: Path) -> int:
                count = 0
                for a, b in zip(reversed(path.parts), reversed(parts), strict=False):
                    if a.lower() != b.lower():
                        break
                    count += 1
                return count

            matches = sorted(matches, key=shared_tail, reverse=True)
        return matches[0] if matches else None


def read_coco_source(json_path: Path, finder: ImageFinder) -> CocoSource:
    """Read one COCO JSON into class names and samples (images found with ``finder``).

    Raises:
        DatasetError: malformed JSON, an unknown category, or an image file that cannot be found.
    """
    data = load_coco_json(json_path)
    where = str(json_path)
    try:
        categories = sorted(data["categories"], key=lambda c: int(c["id"]))
        category_ids = {i: int(c["id"]) for i, c in enumerate(categories)}
        names = {i: str(c.get("name", c["id"])) for i, c in enumerate(categories)}
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError("every category needs an integer 'id'", path=json_path) from error
    blank = [category_ids[i] for i, name in names.items() if not name.strip()]
    if blank:
        raise DatasetError(f"category id(s) {blank} have an empty 'name'", path=json_path)
    name_counts = Counter(names.values())
    if any(count > 1 for count in name_counts.values()):
        shared = sorted(name for name, count in name_counts.items() if count > 1)
        raise DatasetError(
            f"category name(s) {shared} are used by more than one category id; merge or rename them",
            path=json_path,
        )
    class_of = {coco_id: class_id for class_id, coco_id in category_ids.items()}
    if len(class_of) != len(category_ids):
        counts = Counter(category_ids.values())
        repeated = sorted(i for i, n in counts.items() if n > 1)
        raise DatasetError(f"category id(s) {repeated} appear more than once in 'categories'", path=json_path)
    for image in data["images"]:
        if not isinstance(image, dict) or not isinstance(image.get("id"), int | str):
            raise DatasetError(
                f"every image needs an object with an integer or string 'id', got {image!r}"[:200],
                path=json_path,
            )
    image_counts = Counter(image["id"] for image in data["images"])
    repeated_images = sorted(repr(i) for i, n in image_counts.items() if n > 1)
    if repeated_images:
        raise DatasetError(
            f"image id(s) {', '.join(repeated_images)} appear more than once in 'images'", path=json_path
        )
    by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for entry in data.get("annotations") or []:
        if not isinstance(entry, dict):
            raise DatasetError(f"every annotation must be an object, got {entry!r}"[:200], path=json_path)
        image_id = entry.get("image_id")
        if not isinstance(image_id, int | str) or image_id not in image_counts:
            raise DatasetError(
                f"annotation {entry.get('id')}: image_id {image_id!r} is not in 'images' "
                "(remove the annotation or add its image)",
                path=json_path,
            )
        by_image[entry.get("image_id")].append(entry)
    samples: list[Sample] = []
    for image in data["images"]:
        file_name = str(image.get("file_name") or "")
        if not file_name:
            raise DatasetError(f"image {image.get('id')} has no file_name", path=json_path)
        path = finder.find(file_name)
        if path is None:
            raise DatasetError(
                f"image file {file_name!r} not found next to the JSON or under images/", path=json_path
            )
        annotations: list[Annotation] = []
        for entry in by_image.get(image.get("id"), []):
            if entry.get("iscrowd"):
                continue
            category = entry.get("category_id")
            if category not in class_of:
                raise DatasetError(
                    f"annotation {entry.get('id')}: category_id {category} is not in 'categories'",
                    path=json_path,
                )
            annotation = _annotation(entry, class_of[category], image, where)
            if annotation is not None:
                annotations.append(annotation)
        samples.append(Sample(image=path, file_name=path.name, annotations=tuple(annotations)))
    return CocoSource(names=names, category_ids=category_ids, samples=samples)


def export_coco(dataset: YoloDataset, split: str, out_json: Path, *, overwrite: bool = False) -> Path:
    """Write a split's ground truth as a COCO JSON file (see :meth:`YoloDataset.to_coco`).

    Args:
        dataset: the dataset to export.
        split: ``train``, ``val`` or ``test``.
        out_json: the file to write; its folder is created.
        overwrite: replace an existing file (otherwise refused).

    Raises:
        DatasetError: unknown split, unreadable labels, or the file exists.

    Example:
        >>> export_coco(YoloDataset.load("data/shapes"), "val", Path("val.json"))  # doctest: +SKIP
        PosixPath('val.json')
    """
    out_json = Path(out_json)
    if out_json.exists() and not overwrite:
        raise DatasetError("file exists; pass --overwrite to replace it", path=out_json)
    if out_json.exists() and out_json.is_dir():
        raise DatasetError("is a folder; give a .json file name", path=out_json)
    coco = dataset.to_coco(split)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    partial = out_json.with_name(f".{out_json.name}.partial-{os.getpid()}")
    partial.write_text(json.dumps(coco), encoding="utf-8")
    partial.replace(out_json)
    return out_json
