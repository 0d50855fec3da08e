"""YOLO label files: parsing and formatting rows, and finding an image's label file.

A row is either a box, ``cls cx cy w h``, or a polygon, ``cls x1 y1 x2 y2 ...`` (at least three
points); all coordinates are normalized to ``[0, 1]`` by the image's width and height.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nexus.errors import DatasetError


class LabelRowError(ValueError):
    """One label row cannot be parsed; ``kind`` is a short machine-readable reason."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True)
class LabelRow:
    """One parsed YOLO label row.

    Attributes:
        class_id: the class id (0-based).
        values: normalized coordinates: 4 for a box (``cx cy w h``), ``2K`` for a polygon.
        line: the 1-based line number in its file.

    Example:
        >>> row = parse_label_row("1 0.5 0.5 0.2 0.4", line=1)
        >>> row.is_polygon, row.xyxy_normalized()
        (False, (0.4, 0.3, 0.6, 0.7))
    """

    class_id: int
    values: tuple[float, ...]
    line: int

    @property
    def is_polygon(self) -> bool:
        return len(self.values) != 4

    def polygon_normalized(self) -> np.ndarray:
        """``(K, 2)`` normalized points; a box gives its four corners."""
        if self.is_polygon:
            return np.asarray(self.values, dtype=np.float64).reshape(-1, 2)
        x1, y1, x2, y2 = self.xyxy_normalized()
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)

    def xyxy_normalized(self) -> tuple[float, float, float, float]:
        """Normalized ``x1, y1, x2, y2``; a polygon gives its extent (as Ultralytics derives it)."""
        if self.is_polygon:
            points = np.asarray(self.values, dtype=np.float64).reshape(-1, 2)
            x1, y1 = points.min(axis=0)
            x2, y2 = points.max(axis=0)
            return float(x1), float(y1), float(x2), float(y2)
        cx, cy, w, h = self.values
        return (round(cx - w / 2, 9), round(cy - h / 2, 9), round(cx + w / 2, 9), round(cy + h / 2, 9))


def parse_label_row(text: str, line: int) -> LabelRow:
    """Parse one non-blank label row.

    Raises:
        LabelRowError: kind ``bad_row`` (wrong number of fields), ``non_numeric`` (a field is not a
            finite number) or ``bad_class`` (the class is not a non-negative integer).

    Example:
        >>> parse_label_row("0 0.1 0.1 0.9 0.1 0.5 0.9", line=3).is_polygon
        True
    """
    fields = text.split()
    count = len(fields)
    if count != 5 and (count < 7 or count % 2 == 0):
        raise LabelRowError(
            "bad_row",
            f"{count} fields; expected 5 (cls cx cy w h) or an odd number >= 7 (cls x1 y1 x2 y2 x3 y3 ...)",
        )
    try:
        numbers = [float(f) for f in fields]
    except ValueError as error:
        raise LabelRowError("non_numeric", f"not a number: {error}") from error
    if not all(math.isfinite(v) for v in numbers):
        raise LabelRowError("non_numeric", "NaN or infinite value")
    cls = numbers[0]
    if cls < 0 or cls != int(cls):
        raise LabelRowError("bad_class", f"class {fields[0]!r} is not a non-negative integer")
    return LabelRow(class_id=int(cls), values=tuple(numbers[1:]), line=line)


def read_label_file(path: Path) -> list[LabelRow]:
    """Parse every non-blank row of a label file; a missing file has no rows.

    Raises:
        DatasetError: naming ``file:line`` and the problem of the first bad row.

    Example:
        >>> read_label_file(Path("/nonexistent.txt"))
        []
    """
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError("label file is not UTF-8 text", path=path) from error
    rows: list[LabelRow] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rows.append(parse_label_row(raw, number))
        except LabelRowError as error:
            raise DatasetError(f"line {number}: {error} in {raw.strip()!r}", path=path) from error
    return rows


def _fmt(value: float) -> str:
    text = f"{min(max(value, 0.0), 1.0):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def format_box_row(class_id: int, xyxy: tuple[float, ...], width: int, height: int) -> str:
    """A box row from pixel ``x1, y1, x2, y2`` (clipped to the image).

    Example:
        >>> format_box_row(2, (10, 20, 30, 60), 100, 100)
        '2 0.2 0.4 0.2 0.4'
    """
    x1, y1, x2, y2 = (min(max(v, 0.0), s) for v, s in zip(xyxy, (width, height, width, height), strict=True))
    values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
    return " ".join([str(int(class_id)), *(_fmt(v) for v in values)])


def format_polygon_row(class_id: int, polygon_xy: np.ndarray, width: int, height: int) -> str:
    """A polygon row from ``(K, 2)`` pixel points (clipped to the image).

    Example:
        >>> format_polygon_row(0, np.array([[0, 0], [50, 0], [50, 25]]), 100, 50)
        '0 0 0 0.5 0 0.5 0.5'
    """
    points = np.asarray(polygon_xy, dtype=np.float64).reshape(-1, 2) / (width, height)
    return " ".join([str(int(class_id)), *(_fmt(v) for v in points.ravel())])


def label_path_for(image_path: Path) -> Path:
    """The label file of an image, as Ultralytics finds it: the last ``/images/`` becomes ``/labels/``.

    Example:
        >>> label_path_for(Path("/d/images/train/a.jpg")).as_posix()
        '/d/labels/train/a.txt'
    """
    text = str(image_path)
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if images in text:
        text = labels.join(text.rsplit(images, 1))
    return Path(text).with_suffix(".txt")
