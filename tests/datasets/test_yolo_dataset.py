"""YoloDataset: loading, label paths, annotations in pixels, COCO ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from nexus.datasets import YoloDataset, export_coco
from nexus.datasets.labels import parse_label_row
from nexus.datasets.yolo import polygon_area
from nexus.errors import DatasetError


def test_load_from_folder_or_yaml(shapes_dir: Path) -> None:
    from_dir = YoloDataset.load(shapes_dir)
    from_yaml = YoloDataset.load(shapes_dir / "dataset.yaml")
    assert from_dir == from_yaml
    assert from_dir.root == shapes_dir.resolve()
    assert from_dir.yaml_path == shapes_dir.resolve() / "dataset.yaml"
    assert from_dir.names == {0: "circle", 1: "rectangle", 2: "triangle"}
    assert from_dir.splits == {s: shapes_dir.resolve() / "images" / s for s in ("train", "val")}
    assert from_dir.task == "segment"


def test_image_paths_sorted_and_unknown_split(shapes: YoloDataset) -> None:
    paths = shapes.image_paths("train")
    assert paths == sorted(paths) and len(paths) == 6
    with pytest.raises(DatasetError, match="no split 'test'"):
        shapes.image_paths("test")


def test_label_path_follows_ultralytics(shapes: YoloDataset) -> None:
    image = shapes.image_paths("val")[0]
    assert shapes.label_path(image) == shapes.root / "labels" / "val" / f"{image.stem}.txt"


def _write_yaml(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.yaml").write_text(text)
    return folder


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (None, "no such dataset folder"),
        ("", "expected a YAML mapping"),
        ("train: images/train\nval: images/val\n", "missing 'names'"),
        ("names: []\ntrain: a\nval: b\n", "'names' is empty"),
        ("names: [a]\ntrain: images/train\n", "needs both 'train' and 'val'"),
        ("names: [a]\ntrain: t.txt\nval: v.txt\n", "is an image list"),
        ("names: [a]\ntrain: a\nval: b\ntask: pose\n", "task 'pose' is not one of"),
        ("names: {x: a}\ntrain: a\nval: b\n", "'names' keys must be integer"),
        ("names: [a\n", "cannot read YAML"),
    ],
)
def test_load_errors_name_the_problem(tmp_path: Path, yaml_text: str | None, message: str) -> None:
    folder = tmp_path / "ds"
    if yaml_text is not None:
        _write_yaml(folder, yaml_text)
    with pytest.raises(DatasetError, match=message):
        YoloDataset.load(folder)


def test_folder_without_yaml(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no dataset\.yaml in this folder"):
        YoloDataset.load(tmp_path)


def test_read_annotations_pixels_and_masks(shapes: YoloDataset) -> None:
    image = shapes.image_paths("train")[0]
    rows = [parse_label_row(t, i) for i, t in enumerate(shapes.label_path(image).read_text().splitlines(), 1)]
    gt = shapes.read_annotations(image, with_masks=True)
    assert len(gt) == len(rows) > 0
    assert gt.xyxy.dtype == np.float32 and gt.class_id.tolist() == [r.class_id for r in rows]
    for box, row, polygon, mask in zip(gt.xyxy, rows, gt.data["polygon"], gt.mask, strict=True):
        points = np.array(row.values).reshape(-1, 2) * 64
        assert np.allclose(box, [*points.min(0), *points.max(0)], atol=1e-3)
        assert np.allclose(polygon, points, atol=1e-3)
        assert (
            mask.shape == (64, 64)
            and abs(mask.sum() - polygon_area(points)) <= 0.25 * polygon_area(points) + 8
        )
    assert shapes.read_annotations(image).mask is None


def test_detect_rows_and_background(tmp_path: Path) -> None:
    import cv2

    folder = _write_yaml(tmp_path / "ds", "names: [a, b]\ntrain: images/train\nval: images/train\n")
    (folder / "images/train").mkdir(parents=True)
    (folder / "labels/train").mkdir(parents=True)
    cv2.imwrite(str(folder / "images/train/x.png"), np.zeros((50, 100, 3), np.uint8))
    cv2.imwrite(str(folder / "images/train/y.png"), np.zeros((50, 100, 3), np.uint8))
    (folder / "labels/train/x.txt").write_text("1 0.5 0.5 0.2 0.4\n")
    dataset = YoloDataset.load(folder)
    assert dataset.task == "detect"
    x, y = dataset.image_paths("train")
    gt = dataset.read_annotations(x, with_masks=True)
    assert gt.xyxy.tolist() == [[40.0, 15.0, 60.0, 35.0]] and gt.class_id.tolist() == [1]
    assert "polygon" not in gt.data and gt.mask.sum() == 20 * 20
    assert len(dataset.read_annotations(y)) == 0
    coco = dataset.to_coco("train")
    assert coco["annotations"] == [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 2,
            "bbox": [40.0, 15.0, 20.0, 20.0],
            "area": 400.0,
            "iscrowd": 0,
        }
    ]


def test_bad_label_row_names_file_and_line(shapes_copy: YoloDataset) -> None:
    image = shapes_copy.image_paths("train")[0]
    label = shapes_copy.label_path(image)
    label.write_text(label.read_text() + "0 0.5 oops 0.1 0.1\n")
    with pytest.raises(DatasetError, match=rf"{label.name}: line \d+: not a number"):
        shapes_copy.read_annotations(image)


def test_to_coco_ground_truth(shapes: YoloDataset) -> None:
    coco = shapes.to_coco("val")
    images = shapes.image_paths("val")
    assert [i["id"] for i in coco["images"]] == [1, 2]
    assert [i["file_name"] for i in coco["images"]] == [p.name for p in images]
    assert coco["categories"] == [
        {"id": 1, "name": "circle", "supercategory": ""},
        {"id": 2, "name": "rectangle", "supercategory": ""},
        {"id": 3, "name": "triangle", "supercategory": ""},
    ]
    first = shapes.read_annotations(images[0])
    entries = [a for a in coco["annotations"] if a["image_id"] == 1]
    assert [a["category_id"] for a in entries] == (first.class_id + 1).tolist()
    for entry, box, polygon in zip(entries, first.xyxy, first.data["polygon"], strict=True):
        x, y, w, h = entry["bbox"]
        assert np.allclose([x, y, x + w, y + h], box, atol=0.01)
        assert entry["iscrowd"] == 0
        assert entry["area"] == pytest.approx(polygon_area(polygon.astype(float)), abs=0.01)
        assert len(entry["segmentation"][0]) == 2 * len(polygon)
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
    assert "segmentation" not in shapes.to_coco("val", with_segmentation=False)["annotations"][0]


def test_export_coco_loads_in_pycocotools(shapes: YoloDataset, tmp_path: Path) -> None:
    out = export_coco(shapes, "train", tmp_path / "sub" / "train.json")
    coco = COCO(str(out))
    assert len(coco.getImgIds()) == 6
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == ["circle", "rectangle", "triangle"]
    annotation = coco.loadAnns(coco.getAnnIds())[0]
    assert coco.annToMask(annotation).shape == (64, 64)
    with pytest.raises(DatasetError, match="file exists; pass --overwrite"):
        export_coco(shapes, "train", out)
    export_coco(shapes, "val", out, overwrite=True)
    assert len(json.loads(out.read_text())["images"]) == 2
