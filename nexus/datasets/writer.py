"""Write a dataset in the canonical YOLO layout, safely: staged, then moved into place.

The output folder must be new or empty unless ``overwrite`` is set; then only the parts this module
writes (``images/``, ``labels/``, ``dataset.yaml``) are replaced and anything else is left alone.
A failure midway leaves the output folder as it was.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from nexus.datasets.images import verify_image
from nexus.datasets.labels import format_box_row, format_polygon_row
from nexus.datasets.yolo import DATASET_YAML, SPLITS, TASKS, YoloDataset
from nexus.errors import DatasetError, ImageDecodeError

logger = logging.getLogger(__name__)

_WRITTEN_PARTS = ("images", "labels", DATASET_YAML)


@dataclass(frozen=True)
class Annotation:
    """One object in pixel coordinates.

    Attributes:
        class_id: 0-based class id (a key of the dataset's names).
        xyxy: the box, ``x1, y1, x2, y2`` in pixels.
        polygon: ``(K, 2)`` pixel points of the outline, or ``None`` for a box-only object.

    Example:
        >>> Annotation(0, (10.0, 10.0, 50.0, 40.0)).polygon is None
        True
    """

    class_id: int
    xyxy: tuple[float, float, float, float]
    polygon: np.ndarray | None = None


@dataclass(frozen=True)
class Sample:
    """One image to write and its objects.

    Attributes:
        image: the encoded image bytes, or the path of an image file to copy.
        file_name: the name to give it under ``images/<split>/`` (only the base name is used;
            clashes get ``_1``, ``_2`` ... suffixes).
        annotations: its objects; empty for a background image.
        size: ``(width, height)`` when the image was already decoded and checked.

    Example:
        >>> Sample(image=Path("a.jpg"), file_name="a.jpg").annotations
        ()
    """

    image: Path | bytes
    file_name: str
    annotations: tuple[Annotation, ...] = ()
    size: tuple[int, int] | None = None


def check_output_dir(out_dir: Path, overwrite: bool, source: Path | None = None) -> Path:
    """Refuse an output folder that holds data (unless ``overwrite``) or overlaps the source.

    Returns:
        The absolute output folder.

    Raises:
        DatasetError: a one-line reason.

    Example:
        >>> check_output_dir(Path("/tmp/new-dataset-folder"), overwrite=False)  # doctest: +SKIP
        PosixPath('/tmp/new-dataset-folder')
    """
    out_dir = Path(out_dir).expanduser().resolve()
    if source is not None:
        source = Path(source).expanduser().resolve()
        if out_dir == source or source in out_dir.parents or out_dir in source.parents:
            raise DatasetError(
                "output folder overlaps the source; choose a separate output folder", path=out_dir
            )
    if out_dir.exists():
        if not out_dir.is_dir():
            raise DatasetError("output exists and is not a folder", path=out_dir)
        if any(out_dir.iterdir()) and not overwrite:
            raise DatasetError(
                "output folder is not empty; pass --overwrite to replace the dataset in it", path=out_dir
            )
    return out_dir


def _unique_name(file_name: str, taken: set[str]) -> str:
    base = Path(file_name.replace("\\", "/")).name or "image.jpg"
    stem, suffix = Path(base).stem, Path(base).suffix
    name, counter = base, 0
    while Path(name).stem.lower() in taken:  # a.jpg and a.png would share labels/a.txt
        counter += 1
        name = f"{stem}_{counter}{suffix}"
    taken.add(Path(name).stem.lower())
    return name


def _label_text(sample: Sample, task: str, width: int, height: int) -> tuple[str, int]:
    """The label file's text and how many objects were dropped for lying wholly outside the image
    (clipping would leave a zero-size box)."""
    rows = []
    outside = 0
    for ann in sample.annotations:
        x1, y1, x2, y2 = ann.xyxy
        if min(x2, width) <= max(x1, 0) or min(y2, height) <= max(y1, 0):
            outside += 1
            continue
        if task == "segment":
            polygon = ann.polygon
            if polygon is None or len(polygon) < 3:
                x1, y1, x2, y2 = ann.xyxy
                polygon = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)
            rows.append(format_polygon_row(ann.class_id, polygon, width, height))
        else:
            rows.append(format_box_row(ann.class_id, ann.xyxy, width, height))
    return "".join(row + "\n" for row in rows), outside


def _write_split(
    stage: Path, split: str, samples: Iterable[Sample], task: str, names: Mapping[int, str]
) -> None:
    image_dir, label_dir = stage / "images" / split, stage / "labels" / split
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    taken: set[str] = set()
    outside: dict[str, int] = {}
    for sample in samples:
        where = str(sample.image) if isinstance(sample.image, Path) else sample.file_name
        for ann in sample.annotations:
            if ann.class_id not in names:
                raise DatasetError(f"class id {ann.class_id} is not in the dataset's names", path=where)
        data = sample.image.read_bytes() if isinstance(sample.image, Path) else sample.image
        if sample.size is None:
            try:
                width, height = verify_image(data, where)
            except ImageDecodeError as error:
                raise DatasetError(str(error)) from error
        else:
            width, height = sample.size
        name = _unique_name(sample.file_name, taken)
        (image_dir / name).write_bytes(data)
        text, dropped = _label_text(sample, task, width, height)
        (label_dir / Path(name).with_suffix(".txt")).write_text(text, encoding="utf-8")
        if dropped:
            outside[where] = dropped
    if outside:
        logger.warning(
            "%s: dropped %d object(s) lying wholly outside their image, in %d image(s) (e.g. %s)",
            split,
            sum(outside.values()),
            len(outside),
            ", ".join(list(outside)[:3]),
        )


def dataset_yaml_text(names: Mapping[int, str], task: str, splits: Sequence[str]) -> str:
    """The ``dataset.yaml`` text: relative split folders, names, task; no ``path:`` key.

    Example:
        >>> print(dataset_yaml_text({0: "circle"}, "detect", ["train", "val"]), end="")
        names:
          0: circle
        task: detect
        train: images/train
        val: images/val
    """
    data: dict[str, object] = {"names": {int(k): str(v) for k, v in sorted(names.items())}, "task": task}
    for split in splits:
        data[split] = f"images/{split}"
    return yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True)


def write_dataset(
    root: str | Path,
    names: Mapping[int, str],
    task: str,
    splits: Mapping[str, Iterable[Sample]],
    *,
    overwrite: bool = False,
    source: Path | None = None,
) -> YoloDataset:
    """Write images, labels and ``dataset.yaml`` in the canonical layout.

    Args:
        root: the output folder (created; must be empty unless ``overwrite``).
        names: class id -> name; ids should be ``0..n-1``.
        task: ``"detect"`` writes box rows, ``"segment"`` polygon rows (boxes become 4-point polygons).
        splits: split name -> its samples; ``train`` and ``val`` are required.
        overwrite: replace ``images/``, ``labels/`` and ``dataset.yaml`` of a non-empty folder.
        source: a folder the output must not overlap (the import's source).

    Raises:
        DatasetError: bad arguments, an unreadable or corrupt image, or a non-empty output folder.

    Example:
        >>> ok, jpg = cv2.imencode(".jpg", np.zeros((32, 32, 3), np.uint8))  # doctest: +SKIP
        >>> s = Sample(jpg.tobytes(), "a.jpg", (Annotation(0, (4, 4, 20, 20)),))  # doctest: +SKIP
        >>> write_dataset("out", {0: "box"}, "detect", {"train": [s], "val": [s]})  # doctest: +SKIP
    """
    if task not in TASKS:
        raise DatasetError(f"task {task!r} is not one of {', '.join(TASKS)}")
    if not names:
        raise DatasetError("a dataset needs at least one class name")
    missing = [s for s in ("train", "val") if s not in splits]
    if missing:
        raise DatasetError(f"splits must include train and val (missing: {', '.join(missing)})")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise DatasetError(f"unknown split(s) {', '.join(unknown)}; use {', '.join(SPLITS)}")
    out_dir = check_output_dir(Path(root), overwrite, source)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        for split, samples in splits.items():
            _write_split(stage, split, samples, task, names)
        ordered = [s for s in SPLITS if s in splits]
        (stage / DATASET_YAML).write_text(dataset_yaml_text(names, task, ordered), encoding="utf-8")
        out_dir.mkdir(exist_ok=True)
        for part in _WRITTEN_PARTS:
            target = out_dir / part
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            (stage / part).rename(target)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    return YoloDataset.load(out_dir)
