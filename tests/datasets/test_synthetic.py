"""The synthetic shapes dataset: deterministic, varied, labelled with polygons, valid."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from nexus.datasets import CLASS_NAMES, SynthConfig, synthesize_dataset, validate_dataset
from nexus.datasets.synthetic import MAX_HIDDEN, MAX_IOU, draw_image
from nexus.errors import DatasetError


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    config = SynthConfig(images=6, seed=11, imgsz=48)
    synthesize_dataset(tmp_path / "a", config)
    synthesize_dataset(tmp_path / "b", config)
    first, second = _tree_hashes(tmp_path / "a"), _tree_hashes(tmp_path / "b")
    assert first == second
    assert len(first) == 1 + 2 * 6  # yaml + images + labels


def test_other_seed_gives_other_images(tmp_path: Path) -> None:
    synthesize_dataset(tmp_path / "a", SynthConfig(images=4, seed=1, imgsz=48))
    synthesize_dataset(tmp_path / "b", SynthConfig(images=4, seed=2, imgsz=48))
    a, b = _tree_hashes(tmp_path / "a"), _tree_hashes(tmp_path / "b")
    assert a["dataset.yaml"] == b["dataset.yaml"]
    assert a["images/train/shapes_00000.jpg"] != b["images/train/shapes_00000.jpg"]


def test_layout_yaml_and_split(shapes_dir: Path) -> None:
    data = yaml.safe_load((shapes_dir / "dataset.yaml").read_text())
    assert data == {
        "names": dict(enumerate(CLASS_NAMES)),
        "task": "segment",
        "train": "images/train",
        "val": "images/val",
    }
    assert "path" not in data
    assert len(list((shapes_dir / "images/train").glob("*.jpg"))) == 6
    assert len(list((shapes_dir / "labels/val").glob("*.txt"))) == 2


def test_default_config_splits_300_60() -> None:
    config = SynthConfig()
    assert (config.images - config.val_images, config.val_images) == (300, 60)


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({"images": 1}, "set images to 2 or more"),
        ({"imgsz": 16}, "set imgsz between 32 and 4096"),
        ({"val_fraction": 0.0}, "set val_fraction above 0 and below 1"),
        ({"val_fraction": 1.0}, "set val_fraction above 0 and below 1"),
        ({"seed": -1}, "set seed to 0 or a positive integer"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, hint: str) -> None:
    with pytest.raises(DatasetError, match=hint):
        SynthConfig(**kwargs)


def test_objects_classes_sizes_and_overlap() -> None:
    counts, classes, sizes = [], set(), []
    for index in range(40):
        image, objects = draw_image(seed=0, index=index, imgsz=160)
        assert image.shape == (160, 160, 3) and image.dtype == np.uint8
        counts.append(len(objects))
        boxes = np.array([o.xyxy for o in objects])
        for i, obj in enumerate(objects):
            classes.add(obj.class_id)
            assert obj.polygon is not None and len(obj.polygon) >= 3
            assert obj.polygon.min() >= 0 and obj.polygon.max() <= 160
            if obj.class_id == 0:
                assert len(obj.polygon) == 32
            sizes.append(max(boxes[i, 2] - boxes[i, 0], boxes[i, 3] - boxes[i, 1]) / 160)
            for j in range(i):  # a later shape never hides most of an earlier one
                iw = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
                ih = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
                inter = max(iw, 0) * max(ih, 0)
                area_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
                area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
                assert inter / area_j <= MAX_HIDDEN + 1e-9
                assert inter / (area_i + area_j - inter) <= MAX_IOU + 1e-9
    assert classes == {0, 1, 2}
    assert min(counts) >= 1 and max(counts) <= 6 and len(set(counts)) >= 4
    assert min(sizes) >= 0.1 - 1e-6 and max(sizes) <= 0.45 + 1e-6 and np.ptp(sizes) > 0.25


def test_shapes_stand_out_from_what_is_under_them() -> None:
    for index in range(10):
        image, objects = draw_image(seed=5, index=index, imgsz=96)
        last = objects[-1]  # drawn on top: fully visible
        mask = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(last.polygon - 0.5).astype(np.int32)], 1)
        inner = cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)
        ring = (cv2.dilate(mask, np.ones((5, 5), np.uint8)) - mask).astype(bool)
        if inner.sum() < 5 or ring.sum() < 5:
            continue
        contrast = np.linalg.norm(image[inner].mean(0).astype(float) - image[ring].mean(0).astype(float))
        assert contrast > 40, index


def test_synthetic_dataset_validates_clean(shapes_dir: Path) -> None:
    report = validate_dataset(shapes_dir)
    assert report.ok and not report.warnings, report.format_text()


def test_refuses_non_empty_output_and_overwrite_keeps_other_files(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "notes.md").write_text("keep me")
    with pytest.raises(DatasetError, match="not empty; pass --overwrite"):
        synthesize_dataset(out, SynthConfig(images=3, imgsz=32))
    assert sorted(p.name for p in out.iterdir()) == ["notes.md"]
    synthesize_dataset(out, SynthConfig(images=3, imgsz=32), overwrite=True)
    synthesize_dataset(out, SynthConfig(images=2, imgsz=32), overwrite=True)
    assert (out / "notes.md").read_text() == "keep me"
    assert len(list((out / "images").rglob("*.jpg"))) == 2
    assert not list(tmp_path.glob(".ds.partial-*"))
