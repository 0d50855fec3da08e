"""validate_dataset: each kind of damage is reported as the right issue, on the right file and line."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from nexus.datasets import ValidationReport, YoloDataset, validate_dataset
from nexus.errors import DatasetError

GOOD_ROW = "0 0.5 0.5 0.2 0.2"


def _first(ds: YoloDataset, split: str = "train") -> Path:
    return ds.image_paths(split)[0]


def _set_rows(ds: YoloDataset, *rows: str) -> str:
    """Replace the first train image's labels; returns the label's path relative to the root."""
    label = ds.label_path(_first(ds))
    label.write_text("".join(r + "\n" for r in rows))
    return label.relative_to(ds.root).as_posix()


def _rows(*rows: str) -> Callable[[YoloDataset], str]:
    return lambda ds: _set_rows(ds, *rows)


def _label_without_image(ds: YoloDataset) -> str:
    (ds.root / "labels/train/ghost.txt").write_text(GOOD_ROW + "\n")
    return "labels/train/ghost.txt"


def _image_without_label(ds: YoloDataset) -> str:
    ds.label_path(_first(ds)).unlink()
    return _first(ds).relative_to(ds.root).as_posix()


def _image_bytes(make: Callable[[bytes], bytes]) -> Callable[[YoloDataset], str]:
    def damage(ds: YoloDataset) -> str:
        image = _first(ds)
        image.write_bytes(make(image.read_bytes()))
        return image.relative_to(ds.root).as_posix()

    return damage


def _non_image_file(ds: YoloDataset) -> str:
    (ds.root / "images/train/readme.md").write_text("hello")
    return "images/train/readme.md"


def _duplicate_in_split(ds: YoloDataset) -> str:
    image = _first(ds)
    shutil.copy(image, image.with_name("zz_copy.jpg"))
    shutil.copy(ds.label_path(image), ds.label_path(image).with_name("zz_copy.txt"))
    return "images/train/zz_copy.jpg"


def _duplicate_across_splits(ds: YoloDataset) -> str:
    image = _first(ds)
    shutil.copy(image, ds.root / "images/val/zz_leak.jpg")
    shutil.copy(ds.label_path(image), ds.root / "labels/val/zz_leak.txt")
    return "images/val/zz_leak.jpg"


def _label_clash(ds: YoloDataset) -> str:
    image = _first(ds)
    shutil.copy(ds.image_paths("val")[0], image.with_suffix(".png"))
    return image.with_suffix(".png").relative_to(ds.root).as_posix()


def _missing_split(ds: YoloDataset) -> str:
    shutil.rmtree(ds.root / "images/val")
    shutil.rmtree(ds.root / "labels/val")
    return "dataset.yaml"


def _relative_path_key(ds: YoloDataset) -> str:
    ds.yaml_path.write_text("path: .\n" + ds.yaml_path.read_text())
    return "dataset.yaml"


# case id: (damage -> damaged file, expected kind, "error" | "warning", expected line or None)
CASES: dict[str, tuple[Callable[[YoloDataset], str], str, str, int | None]] = {
    "label without image": (_label_without_image, "missing_image", "error", None),
    "image without label": (_image_without_label, "missing_label", "warning", None),
    "corrupt image": (_image_bytes(lambda b: b"\x00garbage" * 10), "corrupt_image", "error", None),
    "truncated jpeg": (_image_bytes(lambda b: b[: len(b) // 2]), "corrupt_image", "error", None),
    "empty image": (_image_bytes(lambda b: b""), "empty_image", "error", None),
    "text file among images": (_non_image_file, "not_image", "warning", None),
    "blank row": (_rows(GOOD_ROW, "   ", "1 0.3 0.3 0.1 0.1"), "empty_row", "warning", 2),
    "too few fields": (_rows(GOOD_ROW, "0 0.5 0.5 0.2"), "bad_row", "error", 2),
    "six fields": (_rows("0 0.5 0.5 0.2 0.2 0.1"), "bad_row", "error", 1),
    "even polygon": (_rows("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1"), "bad_row", "error", 1),
    "non numeric": (_rows("0 0.5 abc 0.2 0.2"), "non_numeric", "error", 1),
    "nan": (_rows("0 nan 0.5 0.2 0.2"), "non_numeric", "error", 1),
    "fractional class": (_rows("1.5 0.5 0.5 0.2 0.2"), "bad_class", "error", 1),
    "unknown class": (_rows(GOOD_ROW, "7 0.5 0.5 0.2 0.2"), "unknown_class", "error", 2),
    "pixel coordinates": (_rows("0 32 32 10 10"), "out_of_bounds", "error", 1),
    "negative coordinate": (_rows("0 0.1 0.1 0.2 -0.1 0.3 0.3"), "out_of_bounds", "error", 1),
    "zero width box": (_rows("0 0.5 0.5 0 0.2"), "degenerate_box", "error", 1),
    "flat polygon": (_rows("2 0.1 0.5 0.4 0.5 0.9 0.5"), "degenerate_box", "error", 1),
    "tiny box": (_rows("0 0.5 0.5 0.01 0.2"), "tiny_box", "warning", 1),
    "box past border": (_rows("0 0.95 0.5 0.3 0.2"), "box_outside", "warning", 1),
    "duplicate row": (_rows(GOOD_ROW, "1 0.3 0.3 0.1 0.1", GOOD_ROW), "duplicate_row", "warning", 3),
    "box row among polygons": (_rows("0 0.1 0.1 0.3 0.1 0.2 0.3", GOOD_ROW), "mixed_rows", "error", 2),
    "only boxes in segment set": (_rows(GOOD_ROW), "box_in_segment", "warning", 1),
    "two images one label": (_label_clash, "label_clash", "error", None),
    "duplicate image in split": (_duplicate_in_split, "duplicate_image", "warning", None),
    "duplicate image across splits": (_duplicate_across_splits, "duplicate_image", "error", None),
    "missing split folder": (_missing_split, "missing_split", "error", None),
    "relative path key": (_relative_path_key, "relative_path_key", "warning", None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_problem_is_reported(shapes_copy: YoloDataset, case: str) -> None:
    damage, kind, severity, line = CASES[case]
    path = damage(shapes_copy)
    report = validate_dataset(shapes_copy.root)
    issues = report.errors if severity == "error" else report.warnings
    matching = [i for i in issues if i.kind == kind]
    assert matching, report.format_text()
    assert matching[0].path == path
    assert matching[0].line == line
    assert report.ok == (severity == "warning")
    other = report.warnings if severity == "error" else report.errors
    assert not [i for i in other if i.kind == kind]
    text = report.format_text()
    where = f"{path}:{line}" if line else path
    assert f"{severity}: {where}: {kind}: " in text


def test_clean_dataset_has_no_issues(shapes_dir: Path) -> None:
    report = validate_dataset(shapes_dir)
    assert report.ok and report.errors == [] and report.warnings == []
    assert report.images == {"train": 6, "val": 2}
    assert report.format_text().startswith("OK: ")


def test_report_to_dict(shapes_copy: YoloDataset) -> None:
    _set_rows(shapes_copy, "9 0.5 0.5 0.2 0.2")
    data = validate_dataset(shapes_copy).to_dict()
    assert data["ok"] is False
    assert data["images"] == {"train": 6, "val": 2}
    (issue,) = data["errors"]
    assert issue["kind"] == "unknown_class" and issue["line"] == 1
    assert issue["message"] == "class 9 is not in names (0..2)"
    assert set(issue) == {"path", "kind", "message", "line"}


def test_many_problems_are_all_reported(shapes_copy: YoloDataset) -> None:
    _set_rows(shapes_copy, "0 1", "9 0.5 0.5 0.2 0.2", "0 2 0.5 0.2 0.2")
    _label_without_image(shapes_copy)
    report: ValidationReport = validate_dataset(shapes_copy)
    assert sorted(i.kind for i in report.errors) == [
        "bad_row",
        "missing_image",
        "out_of_bounds",
        "unknown_class",
    ]


def test_missing_dataset_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such dataset folder"):
        validate_dataset(tmp_path / "nope")
