"""Imports refuse bad input with one line naming the file, and never damage existing data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nexus.datasets import YoloDataset, import_dataset
from nexus.errors import DatasetError


@pytest.fixture
def flat(shapes: YoloDataset, tmp_path: Path) -> Path:
    """A flat YOLO export: classes.txt, images/, labels/ (copied from the tiny dataset)."""
    root = tmp_path / "export"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("circle\nrectangle\ntriangle\n")
    for split in shapes.splits:
        for image in shapes.image_paths(split):
            shutil.copy(image, root / "images" / image.name)
            shutil.copy(shapes.label_path(image), root / "labels" / f"{image.stem}.txt")
    return root


def _first_label(root: Path) -> Path:
    return sorted((root / "labels").glob("*.txt"))[0]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("0 0.5 0.5 0.2", r"line 2: 4 fields; expected 5"),
        ("0 0.5 zz 0.2 0.2", r"line 2: not a number"),
        ("-1 0.5 0.5 0.2 0.2", r"line 2: class '-1' is not a non-negative integer"),
        ("9 0.5 0.5 0.2 0.2", r"line 2: class 9 is not in the class names \(0..2\)"),
    ],
)
def test_bad_label_row_stops_import(flat: Path, tmp_path: Path, row: str, message: str) -> None:
    label = _first_label(flat)
    first = label.read_text().splitlines()[0]
    label.write_text(f"{first}\n{row}\n")
    with pytest.raises(DatasetError, match=rf"{label.name}: {message}"):
        import_dataset(flat, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.partial-*"))


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"not a jpeg", "corrupt or not an image"), (None, "corrupt")],
)
def test_corrupt_image_stops_import(flat: Path, tmp_path: Path, content: bytes | None, message: str) -> None:
    image = sorted((flat / "images").glob("*.jpg"))[1]
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2] if content is None else content)
    with pytest.raises(DatasetError, match=rf"{image.name}: {message}"):
        import_dataset(flat, tmp_path / "out")


def test_unknown_format_and_missing_source(flat: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown format 'voc'; use one of: auto, coco"):
        import_dataset(flat, tmp_path / "out", format="voc")
    with pytest.raises(DatasetError, match="no such file or folder"):
        import_dataset(tmp_path / "missing", tmp_path / "out")


def test_unrecognised_folder_asks_for_format(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"cannot tell the format.*pass --format"):
        import_dataset(tmp_path / "src", tmp_path / "out")


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_val_fraction(flat: Path, tmp_path: Path, fraction: float) -> None:
    with pytest.raises(DatasetError, match="must be above 0 and below 1"):
        import_dataset(flat, tmp_path / "out", val_fraction=fraction)


def test_non_empty_output_is_refused_and_overwrite_keeps_other_files(flat: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="output folder is not empty; pass --overwrite"):
        import_dataset(flat, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    import_dataset(flat, out, overwrite=True)
    dataset = import_dataset(flat, out, overwrite=True, val_fraction=0.5)
    assert (out / "keep.txt").read_text() == "mine"
    assert len(dataset.image_paths("val")) == 4


def test_failed_overwrite_leaves_previous_dataset(flat: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_dataset(flat, out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    _first_label(flat).write_text("0 bad row\n")
    with pytest.raises(DatasetError):
        import_dataset(flat, out, overwrite=True)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


@pytest.mark.parametrize("inside", ["same", "child", "parent"])
def test_output_overlapping_source_is_refused(flat: Path, inside: str) -> None:
    out = {"same": flat, "child": flat / "converted", "parent": flat.parent}[inside]
    with pytest.raises(DatasetError, match="overlaps the source"):
        import_dataset(flat, out, overwrite=True)
    assert (flat / "classes.txt").is_file() and len(list((flat / "images").iterdir())) == 8


def test_coco_missing_image_and_unknown_category(shapes: YoloDataset, tmp_path: Path) -> None:
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    shutil.copy(shapes.image_paths("train")[0], root / "images" / "a.jpg")
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "gone.jpg"}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [],
    }
    (root / "ann.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match=r"ann.json: image file 'gone.jpg' not found"):
        import_dataset(root, tmp_path / "out")
    coco["images"] = coco["images"][:1]
    coco["annotations"] = [{"id": 4, "image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5]}]
    (root / "ann.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match="annotation 4: category_id 3 is not in 'categories'"):
        import_dataset(root, tmp_path / "out")


_GOOD_IMAGES = [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}]
_ONE_BOX = [{"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"categories": [{"id": 1, "name": "x"}, {"id": 1, "name": "y"}]},
            r"category id\(s\) \[1\] appear more",
        ),
        (
            {"images": [*_GOOD_IMAGES, {"id": 2, "file_name": "a.jpg"}]},
            r"image id\(s\) 2 appear more than once",
        ),
        ({"images": [*_GOOD_IMAGES, "c.jpg"]}, r"every image needs an object with an integer or string 'id'"),
        (
            {"images": [*_GOOD_IMAGES, {"file_name": "c.jpg"}]},
            r"every image needs .* 'id', got \{'file_name'",
        ),
        ({"annotations": [{**_ONE_BOX[0], "image_id": 7}]}, r"annotation 4: image_id 7 is not in 'images'"),
        ({"annotations": [{**_ONE_BOX[0], "image_id": None}]}, r"annotation 4: image_id None is not in"),
        ({"annotations": ["box"]}, r"every annotation must be an object, got 'box'"),
        ({"annotations": [{**_ONE_BOX[0], "bbox": "1,1,5,5"}]}, r"annotation 4: bbox must be 4 numbers"),
        ({"annotations": [{**_ONE_BOX[0], "bbox": [1, 1, 5]}]}, r"bbox must be 4 numbers .*got \[1, 1, 5\]"),
        ({"annotations": [{**_ONE_BOX[0], "bbox": [1, "a", 5, 5]}]}, r"bbox must be 4 numbers"),
        ({"annotations": [{**_ONE_BOX[0], "bbox": [1, None, 5, 5]}]}, r"bbox must be 4 numbers"),
        ({"annotations": [{**_ONE_BOX[0], "bbox": [1, 1, float("nan"), 5]}]}, r"got \[1, 1, nan, 5\]"),
        ({"annotations": [{**_ONE_BOX[0], "bbox": [1, float("inf"), 5, 5]}]}, r"bbox must be 4 numbers"),
        (
            {"categories": [{"id": 1, "name": "x"}, {"id": 2, "name": "x"}]},
            r"category name\(s\) \['x'\] are used by more than one category id",
        ),
        (
            {"categories": [{"id": 1, "name": "x"}, {"id": 2, "name": " "}]},
            r"category id\(s\) \[2\] have an empty",
        ),
    ],
)
def test_coco_inconsistencies_are_named(
    shapes: YoloDataset, tmp_path: Path, change: dict, message: str
) -> None:
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(shapes.image_paths("train")[0], root / "images" / name)
    coco = {"images": _GOOD_IMAGES, "categories": [{"id": 1, "name": "x"}], "annotations": _ONE_BOX, **change}
    (root / "ann.json").write_text(json.dumps(coco))
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=message):
        import_dataset(root, out)
    assert not (out / "dataset.yaml").exists()
    coco = {"images": _GOOD_IMAGES, "categories": [{"id": 1, "name": "x"}], "annotations": _ONE_BOX}
    (root / "ann.json").write_text(json.dumps(coco))  # the consistent file imports
    assert import_dataset(root, out).names == {0: "x"}


def test_coco_boxes_wholly_outside_their_image_are_dropped(
    shapes: YoloDataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(shapes.image_paths("train")[0], root / "images" / name)
    boxes = [
        [1, 1, 5, 5],  # inside
        [-20, -20, 10, 10],  # wholly above and left of the image
        [100_000, 1, 5, 5],  # wholly right of it
        [-4, -4, 8, 8],  # partly inside: clipped, kept
    ]
    annotations = [
        {"id": i, "image_id": 1, "category_id": 1, "bbox": box} for i, box in enumerate(boxes, start=1)
    ]
    coco = {"images": _GOOD_IMAGES, "categories": [{"id": 1, "name": "x"}], "annotations": annotations}
    (root / "ann.json").write_text(json.dumps(coco))
    out = tmp_path / "out"
    import_dataset(root, out)
    rows = [row.split() for label in out.glob("labels/*/a.txt") for row in label.read_text().splitlines()]
    assert len(rows) == 2
    assert all(float(row[3]) > 0 and float(row[4]) > 0 for row in rows)
    (warning,) = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert "dropped 2 object(s) lying wholly outside their image, in 1 image(s)" in warning
    assert "a.jpg" in warning


def test_single_image_cannot_be_split(shapes: YoloDataset, tmp_path: Path) -> None:
    root = tmp_path / "one"
    (root / "images").mkdir(parents=True)
    shutil.copy(shapes.image_paths("train")[0], root / "images" / "a.jpg")
    (root / "classes.txt").write_text("a\n")
    with pytest.raises(DatasetError, match=r"found 1 image\(s\); at least 2"):
        import_dataset(root, tmp_path / "out")


def test_clashing_file_names_get_suffixes(shapes: YoloDataset, tmp_path: Path) -> None:
    root = tmp_path / "nested"
    for i, sub in enumerate("abcd"):
        (root / "images" / sub).mkdir(parents=True)
        (root / "labels" / sub).mkdir(parents=True)
        image = shapes.image_paths("train")[i]
        shutil.copy(image, root / "images" / sub / "x.jpg")
        shutil.copy(shapes.label_path(image), root / "labels" / sub / "x.txt")
    (root / "classes.txt").write_text("circle\nrectangle\ntriangle\n")
    dataset = import_dataset(root, tmp_path / "out", val_fraction=0.25)
    assert [p.name for p in dataset.image_paths("train")] == ["x.jpg", "x_1.jpg", "x_2.jpg"]
    assert [p.name for p in dataset.image_paths("val")] == ["x.jpg"]
