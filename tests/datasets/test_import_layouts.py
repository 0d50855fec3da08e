"""Build each tool's export layout from a tiny dataset, import it, and get the same boxes back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from nexus.datasets import YoloDataset, detect_format, export_coco, import_dataset
from nexus.vision.masks import encode_rle


def _all_images(dataset: YoloDataset) -> list[Path]:
    return [p for split in dataset.splits for p in dataset.image_paths(split)]


def _merged_coco(dataset: YoloDataset, category_offset: int = 1) -> dict[str, Any]:
    """All splits in one COCO dict with base-name file names (as CVAT and Label Studio write)."""
    merged: dict[str, Any] = {"images": [], "annotations": [], "categories": []}
    for split in dataset.splits:
        coco = dataset.to_coco(split)
        base = len(merged["images"])
        for image in coco["images"]:
            merged["images"].append({**image, "id": image["id"] + base})
        for ann in coco["annotations"]:
            merged["annotations"].append(
                {
                    **ann,
                    "id": len(merged["annotations"]) + 1,
                    "image_id": ann["image_id"] + base,
                    "category_id": ann["category_id"] - 1 + category_offset,
                }
            )
    merged["categories"] = [
        {"id": k + category_offset, "name": name} for k, name in sorted(dataset.names.items())
    ]
    return merged


def _yolo_box_rows(dataset: YoloDataset, image: Path) -> str:
    gt = dataset.read_annotations(image)
    h, w = cv2.imread(str(image)).shape[:2]
    rows = []
    for (x1, y1, x2, y2), cls in zip(gt.xyxy, gt.class_id, strict=True):
        rows.append(
            f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
        )
    return "".join(r + "\n" for r in rows)


def build_coco(dataset: YoloDataset, root: Path) -> Path:
    """Generic COCO: annotations/instances_<split>.json (from export_coco) + images/<split>/."""
    for split in dataset.splits:
        export_coco(dataset, split, root / "annotations" / f"instances_{split}.json")
        shutil.copytree(dataset.splits[split], root / "images" / split)
    return root


def build_cvat_coco(dataset: YoloDataset, root: Path) -> Path:
    """CVAT "COCO 1.0": annotations/instances_default.json + images/ (CVAT adds attributes)."""
    coco = _merged_coco(dataset)
    coco["licenses"] = [{"name": "", "id": 0, "url": ""}]
    coco["info"] = {"contributor": "", "date_created": "", "description": "", "version": ""}
    for ann in coco["annotations"]:
        ann["attributes"] = {"occluded": False}
    for cat in coco["categories"]:
        cat["supercategory"] = ""
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_default.json").write_text(json.dumps(coco))
    (root / "images").mkdir()
    for image in _all_images(dataset):
        shutil.copy(image, root / "images" / image.name)
    return root


def build_labelstudio_coco(dataset: YoloDataset, root: Path) -> Path:
    """Label Studio "COCO": result.json with 0-based categories, boxes only, odd file names."""
    coco = _merged_coco(dataset, category_offset=0)
    for i, image in enumerate(coco["images"]):
        name = Path(image["file_name"]).name
        image["file_name"] = f"images/{name}" if i % 2 else f"/data/upload/1/{name}"
    for ann in coco["annotations"]:
        ann.pop("segmentation", None)
        ann["ignore"] = 0
    coco["info"] = {"contributor": "Label Studio"}
    root.mkdir(parents=True)
    # Label Studio escapes slashes in its JSON
    (root / "result.json").write_text(json.dumps(coco).replace("/", "\\/"))
    (root / "images").mkdir()
    for image in _all_images(dataset):
        shutil.copy(image, root / "images" / image.name)
    return root


def build_cvat_yolo(dataset: YoloDataset, root: Path) -> Path:
    """CVAT "YOLO 1.1": obj.names, obj.data, train.txt, obj_train_data/ with images and .txt side by side."""
    data_dir = root / "obj_train_data"
    data_dir.mkdir(parents=True)
    names = [dataset.names[k] for k in sorted(dataset.names)]
    (root / "obj.names").write_text("\n".join(names) + "\n")
    (root / "obj.data").write_text(
        f"classes = {len(names)}\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n"
    )
    listed = []
    for image in _all_images(dataset):
        shutil.copy(image, data_dir / image.name)
        (data_dir / f"{image.stem}.txt").write_text(_yolo_box_rows(dataset, image))
        listed.append(f"data/obj_train_data/{image.name}")
    (root / "train.txt").write_text("\n".join(listed) + "\n")
    return root


def build_labelstudio_yolo(dataset: YoloDataset, root: Path, notes: bool = True) -> Path:
    """Label Studio "YOLO": classes.txt, images/, labels/, notes.json."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    names = [dataset.names[k] for k in sorted(dataset.names)]
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    if notes:
        categories = [{"id": i, "name": n} for i, n in enumerate(names)]
        (root / "notes.json").write_text(json.dumps({"categories": categories, "info": {"year": 2024}}))
    for image in _all_images(dataset):
        shutil.copy(image, root / "images" / image.name)
        (root / "labels" / f"{image.stem}.txt").write_text(_yolo_box_rows(dataset, image))
    return root


def build_flat_yolo(dataset: YoloDataset, root: Path) -> Path:
    return build_labelstudio_yolo(dataset, root, notes=False)


def build_ultralytics_lists(dataset: YoloDataset, root: Path) -> Path:
    """An Ultralytics folder whose data.yaml lists images in train.txt / val.txt, with path: ."""
    shutil.copytree(dataset.root / "images", root / "images")
    shutil.copytree(dataset.root / "labels", root / "labels")
    for split in dataset.splits:
        lines = [f"./images/{split}/{p.name}" for p in dataset.image_paths(split)]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    data = {
        "path": ".",
        "train": "train.txt",
        "val": "val.txt",
        "names": [dataset.names[k] for k in sorted(dataset.names)],
    }
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root


LAYOUTS = {
    # name: (builder, format detected by auto, task after import, source keeps its split)
    "coco": (build_coco, "coco", "segment", True),
    "cvat-coco": (build_cvat_coco, "cvat-coco", "segment", False),
    "labelstudio-coco": (build_labelstudio_coco, "labelstudio-coco", "detect", False),
    "cvat-yolo": (build_cvat_yolo, "cvat-yolo", "detect", False),
    "labelstudio-yolo": (build_labelstudio_yolo, "labelstudio-yolo", "detect", False),
    "flat-yolo": (build_flat_yolo, "yolo", "detect", False),
    "ultralytics-lists": (build_ultralytics_lists, "yolo", "segment", True),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("fmt", ["auto", "explicit"])
def test_import_round_trips_boxes_and_names(
    shapes: YoloDataset, tmp_path: Path, same_boxes, layout: str, fmt: str
) -> None:
    builder, detected, task, keeps_split = LAYOUTS[layout]
    source = builder(shapes, tmp_path / "export")
    assert detect_format(source) == detected
    imported = import_dataset(source, tmp_path / "out", format="auto" if fmt == "auto" else detected, seed=1)
    assert imported.names == shapes.names
    assert imported.task == task
    same_boxes(shapes, imported)
    counts = {split: len(imported.image_paths(split)) for split in imported.splits}
    assert counts == {"train": 6, "val": 2}  # kept, or split with round(8 * 0.2) = 2
    if keeps_split:
        assert [p.name for p in imported.image_paths("val")] == [p.name for p in shapes.image_paths("val")]
    assert (tmp_path / "out" / "dataset.yaml").is_file()


def test_import_our_own_layout(shapes: YoloDataset, tmp_path: Path, same_boxes) -> None:
    imported = import_dataset(shapes.root, tmp_path / "out")
    same_boxes(shapes, imported)
    assert (tmp_path / "out" / "dataset.yaml").read_text() == (shapes.root / "dataset.yaml").read_text()


def test_export_coco_round_trips_through_import(shapes: YoloDataset, tmp_path: Path) -> None:
    source = tmp_path / "coco"
    export_coco(shapes, "val", source / "annotations.json")
    shutil.copytree(shapes.splits["val"], source / "images")
    imported = import_dataset(source / "annotations.json", tmp_path / "out", val_fraction=0.5)
    assert imported.names == shapes.names
    want = {p.stem: shapes.read_annotations(p) for p in shapes.image_paths("val")}
    got = {p.stem: imported.read_annotations(p) for s in imported.splits for p in imported.image_paths(s)}
    assert sorted(want) == sorted(got)
    for stem, gt in want.items():
        assert np.allclose(np.sort(gt.xyxy, axis=0), np.sort(got[stem].xyxy, axis=0), atol=1.0)
        for a, b in zip(gt.data["polygon"], got[stem].data["polygon"], strict=True):
            assert np.allclose(a, b, atol=0.01)


def test_split_is_deterministic_per_seed(shapes: YoloDataset, tmp_path: Path) -> None:
    source = build_flat_yolo(shapes, tmp_path / "export")
    val = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 7)):
        dataset = import_dataset(source, tmp_path / name, val_fraction=0.5, seed=seed)
        val[name] = [p.name for p in dataset.image_paths("val")]
        assert len(val[name]) == 4
    assert val["a"] == val["b"]
    assert val["a"] != val["c"]


def _coco_with_rle_bbox_and_crowd(shapes: YoloDataset, root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    for name, image in zip(("a.jpg", "b.jpg"), shapes.image_paths("train"), strict=False):
        shutil.copy(image, root / "images" / name)
    mask = np.zeros((64, 64), bool)
    mask[10:30, 5:25] = True
    mask[40:50, 40:60] = True  # two parts
    blob, box = 5, 2
    annotations = [
        {"bbox": [5, 10, 55, 40], "category_id": blob, "segmentation": encode_rle(mask)},
        {"bbox": [30.5, 2.0, 12.0, 6.5], "category_id": box},
        {
            "bbox": [0, 0, 64, 64],
            "category_id": box,
            "iscrowd": 1,
            "segmentation": {"size": [64, 64], "counts": [0, 4096]},
        },
        {
            "bbox": [1, 1, 44, 10],
            "category_id": blob,
            "segmentation": [[1, 1, 21, 1, 21, 11, 1, 11], [40, 2, 45, 2, 45, 5]],
        },
    ]
    coco = {
        "images": [
            {"id": 7, "file_name": "a.jpg", "width": 64, "height": 64},
            {"id": 8, "file_name": "b.jpg", "width": 64, "height": 64},
        ],
        "categories": [{"id": blob, "name": "blob"}, {"id": box, "name": "box"}],
        "annotations": [
            {"id": i, "image_id": 7, "iscrowd": 0, "area": 1.0, **entry}
            for i, entry in enumerate(annotations, 1)
        ],
    }
    (root / "instances.json").write_text(json.dumps(coco))
    return root


def test_coco_rle_bbox_only_multipolygon_and_crowd(shapes: YoloDataset, tmp_path: Path) -> None:
    source = _coco_with_rle_bbox_and_crowd(shapes, tmp_path / "export")
    assert detect_format(source) == "coco"
    dataset = import_dataset(source, tmp_path / "out", val_fraction=0.5)
    assert dataset.names == {0: "box", 1: "blob"}  # categories sorted by id: 2, 5
    assert dataset.task == "segment"
    images = {p.stem: p for s in dataset.splits for p in dataset.image_paths(s)}
    assert sorted(images) == ["a", "b"]
    assert len(dataset.read_annotations(images["b"])) == 0  # a background image is kept
    gt = dataset.read_annotations(images["a"], with_masks=True)
    order = np.argsort(gt.xyxy[:, 0] * 1000 + gt.xyxy[:, 1])
    boxes, classes = gt.xyxy[order], gt.class_id[order]
    assert classes.tolist() == [1, 1, 0]  # the crowd entry is skipped
    assert np.allclose(boxes[0], [1, 1, 45, 11], atol=1.0)  # two polygons joined into one
    assert np.allclose(boxes[1], [5, 10, 60, 50], atol=1.0)  # RLE with two parts, traced
    assert np.allclose(boxes[2], [30.5, 2.0, 42.5, 8.5], atol=0.01)  # bbox only -> rectangle polygon
    rle_mask = gt.mask[order[1]]
    assert rle_mask[15, 10] and rle_mask[45, 50] and not rle_mask[5, 5]
