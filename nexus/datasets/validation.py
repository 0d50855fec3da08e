"""Check a YOLO dataset on disk and report every problem with the file (and line) it is in.

Errors would break or silently corrupt training (Ultralytics drops a whole label file with one bad
row); warnings are worth a look (background images, duplicates inside a split, tiny boxes).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nexus.datasets.images import is_image_file, verify_image
from nexus.datasets.labels import LabelRow, LabelRowError, label_path_for, parse_label_row
from nexus.datasets.yolo import YoloDataset, read_yaml_mapping
from nexus.errors import ImageDecodeError

COORD_TOLERANCE = 1e-6
"""Normalized coordinates may exceed ``[0, 1]`` by this much (float rounding)."""

BOX_OUTSIDE_TOLERANCE = 0.01
"""A box may reach this far (normalized) past the image border before a warning."""

TINY_BOX_PIXELS = 2.0
"""Boxes narrower or lower than this many pixels get a warning."""


@dataclass(frozen=True)
class Issue:
    """One problem found in a dataset.

    Attributes:
        path: the file, relative to the dataset folder when inside it.
        kind: a short machine-readable name, e.g. ``unknown_class``.
        message: what is wrong, for a person.
        line: the 1-based line in a label file, when the problem is on one line.

    Example:
        >>> str(Issue("labels/train/a.txt", "unknown_class", "class 7 is not in names", line=3))
        'labels/train/a.txt:3: unknown_class: class 7 is not in names'
    """

    path: str
    kind: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.kind}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ValidationReport:
    """Everything :func:`validate_dataset` found.

    Attributes:
        root: the dataset folder.
        errors: problems that break or corrupt training.
        warnings: problems worth a look.
        images: image files per split.

    Example:
        >>> ValidationReport(root=Path("d")).ok
        True
    """

    root: Path
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    images: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``ok``, ``root``, ``images``, ``errors``, ``warnings``."""
        return {
            "ok": self.ok,
            "root": str(self.root),
            "images": dict(self.images),
            "errors": [issue.to_dict() for issue in self.errors],
            "warnings": [issue.to_dict() for issue in self.warnings],
        }

    def format_text(self) -> str:
        """A human report: one line per issue, then a summary line."""
        lines = [f"error: {issue}" for issue in self.errors]
        lines += [f"warning: {issue}" for issue in self.warnings]
        counts = ", ".join(f"{split} {n}" for split, n in self.images.items())
        verdict = "OK" if self.ok else "FAILED"
        found = f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        lines.append(f"{verdict}: {self.root} ({counts} images): {found}")
        return "\n".join(lines)


class _Checker:
    def __init__(self, dataset: YoloDataset) -> None:
        self.dataset = dataset
        self.report = ValidationReport(root=dataset.root)
        self.hashes: dict[str, tuple[str, Path]] = {}
        self.label_owners: dict[Path, Path] = {}

    def rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.dataset.root).as_posix()
        except ValueError:
            return str(path)

    def error(self, path: Path, kind: str, message: str, line: int | None = None) -> None:
        self.report.errors.append(Issue(self.rel(path), kind, message, line))

    def warn(self, path: Path, kind: str, message: str, line: int | None = None) -> None:
        self.report.warnings.append(Issue(self.rel(path), kind, message, line))

    def check_yaml(self) -> None:
        data = read_yaml_mapping(self.dataset.yaml_path)
        base = data.get("path")
        if base and not Path(str(base)).is_absolute():
            self.warn(
                self.dataset.yaml_path,
                "relative_path_key",
                f"'path: {base}' is resolved by Ultralytics against the working directory; remove it",
            )

    def check_split(self, split: str, image_dir: Path) -> None:
        if not image_dir.is_dir():
            self.error(
                self.dataset.yaml_path, "missing_split", f"split {split!r}: folder {image_dir} does not exist"
            )
            self.report.images[split] = 0
            return
        files = sorted(p for p in image_dir.rglob("*") if p.is_file())
        images = [p for p in files if is_image_file(p)]
        self.report.images[split] = len(images)
        for path in files:
            if not is_image_file(path):
                self.warn(path, "not_image", "not an image file name; training ignores it")
        for image in images:
            size = self.check_image(split, image)
            self.check_labels(image, size)
        self.check_orphan_labels(image_dir, images)

    def check_image(self, split: str, image: Path) -> tuple[int, int] | None:
        data = image.read_bytes()
        if not data:
            self.error(image, "empty_image", "empty file (0 bytes)")
            return None
        try:
            size = verify_image(data, image.name)
        except ImageDecodeError as error:
            self.error(image, "corrupt_image", str(error).split(": ", 1)[-1])
            return None
        digest = hashlib.sha1(data).hexdigest()
        if digest in self.hashes:
            first_split, first = self.hashes[digest]
            if first_split == split:
                self.warn(image, "duplicate_image", f"same content as {self.rel(first)}")
            else:
                self.error(
                    image,
                    "duplicate_image",
                    f"same content as {self.rel(first)} in {first_split}: it leaks across splits",
                )
        else:
            self.hashes[digest] = (split, image)
        return size

    def check_labels(self, image: Path, size: tuple[int, int] | None) -> None:
        label = label_path_for(image)
        if not label.is_file():
            self.warn(image, "missing_label", f"no label file {self.rel(label)} (a background image)")
            return
        try:
            lines = label.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            self.error(label, "bad_row", "label file is not UTF-8 text")
            return
        owner = self.label_owners.setdefault(label, image)
        if owner != image:
            self.error(
                image, "label_clash", f"shares {self.rel(label)} with {self.rel(owner)} (same file stem)"
            )
        seen: dict[tuple[float, ...], int] = {}
        kinds: dict[bool, int] = {}
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                self.warn(label, "empty_row", "blank row", number)
                continue
            try:
                row = parse_label_row(text, number)
            except LabelRowError as error:
                self.error(label, error.kind, f"{error}: {text.strip()!r}", number)
                continue
            key = (row.class_id, *row.values)
            if key in seen:
                self.warn(label, "duplicate_row", f"same as line {seen[key]}", number)
            else:
                seen[key] = number
            kinds.setdefault(row.is_polygon, number)
            self.check_row(label, row, size)
        if len(kinds) == 2:
            self.error(
                label,
                "mixed_rows",
                "box row among polygon rows: Ultralytics would read it as a 2-point polygon",
                kinds[False],
            )
        elif self.dataset.task == "segment" and kinds.get(False):
            self.warn(
                label, "box_in_segment", "only box rows in a segment dataset: no masks to learn", kinds[False]
            )

    def check_row(self, label: Path, row: LabelRow, size: tuple[int, int] | None) -> None:
        names = self.dataset.names
        if row.class_id not in names:
            known = f"{min(names)}..{max(names)}"
            self.error(label, "unknown_class", f"class {row.class_id} is not in names ({known})", row.line)
        outside = [v for v in row.values if v < -COORD_TOLERANCE or v > 1 + COORD_TOLERANCE]
        if outside:
            self.error(
                label,
                "out_of_bounds",
                f"coordinate {outside[0]:g} is outside [0, 1] (not normalized?)",
                row.line,
            )
            return
        x1, y1, x2, y2 = row.xyxy_normalized()
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            self.error(label, "degenerate_box", f"zero width or height ({x2 - x1:g} x {y2 - y1:g})", row.line)
            return
        if not row.is_polygon and (
            min(x1, y1) < -BOX_OUTSIDE_TOLERANCE or max(x2, y2) > 1 + BOX_OUTSIDE_TOLERANCE
        ):
            self.warn(label, "box_outside", "box reaches past the image border", row.line)
        if size is not None:
            width, height = (x2 - x1) * size[0], (y2 - y1) * size[1]
            if min(width, height) < TINY_BOX_PIXELS:
                self.warn(label, "tiny_box", f"box is only {width:.1f} x {height:.1f} pixels", row.line)

    def check_orphan_labels(self, image_dir: Path, images: list[Path]) -> None:
        label_dir = label_path_for(image_dir / "x.jpg").parent
        if label_dir == image_dir or not label_dir.is_dir():
            return
        expected = {label_path_for(image) for image in images}
        for label in sorted(label_dir.rglob("*.txt")):
            if label not in expected:
                self.error(label, "missing_image", "label file without a matching image")


def validate_dataset(dataset_dir: str | Path | YoloDataset) -> ValidationReport:
    """Check images, labels and the YAML of a dataset; nothing is changed.

    Checks: labels without images, images without labels (warning), empty, corrupt or non-image
    files, blank or malformed rows, non-numeric values, coordinates outside ``[0, 1]``, degenerate
    and tiny boxes, class ids not in ``names``, duplicate images (an error across splits),
    duplicate rows, box rows mixed with polygon rows, and two images sharing one label file.

    Raises:
        DatasetError: the folder or its ``dataset.yaml`` is missing or unreadable.

    Example:
        >>> report = validate_dataset("data/shapes")  # doctest: +SKIP
        >>> report.ok, [str(i) for i in report.errors][:1]  # doctest: +SKIP
        (False, ['labels/train/a.txt:3: unknown_class: class 7 is not in names (0..2)'])
    """
    dataset = dataset_dir if isinstance(dataset_dir, YoloDataset) else YoloDataset.load(dataset_dir)
    checker = _Checker(dataset)
    checker.check_yaml()
    for split, image_dir in dataset.splits.items():
        checker.check_split(split, image_dir)
    return checker.report
