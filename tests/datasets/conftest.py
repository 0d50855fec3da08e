"""Fixtures for dataset tests: one tiny synthetic dataset, copied when a test changes it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from nexus.datasets import SynthConfig, YoloDataset, synthesize_dataset

TINY = SynthConfig(images=8, seed=3, imgsz=64, val_fraction=0.25)


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only tiny shapes dataset (6 train, 2 val, 64 px); copy it before changing it."""
    root = tmp_path_factory.mktemp("shapes") / "ds"
    synthesize_dataset(root, TINY)
    return root


@pytest.fixture
def shapes(shapes_dir: Path) -> YoloDataset:
    return YoloDataset.load(shapes_dir)


@pytest.fixture
def shapes_copy(shapes_dir: Path, tmp_path: Path) -> YoloDataset:
    """A private copy of the tiny dataset that the test may modify."""
    target = tmp_path / "copy"
    shutil.copytree(shapes_dir, target)
    return YoloDataset.load(target)


def boxes_by_name(dataset: YoloDataset) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Image stem -> ``(class name, pixel box)`` of each object, over all splits."""
    result: dict[str, list[tuple[str, np.ndarray]]] = {}
    for split in dataset.splits:
        for image in dataset.image_paths(split):
            detections = dataset.read_annotations(image)
            result[image.stem] = [
                (dataset.names[int(c)], box)
                for c, box in zip(detections.class_id, detections.xyxy, strict=True)
            ]
    return result


@pytest.fixture
def same_boxes():
    """The :func:`assert_same_boxes` check (a fixture, so tests need not import conftest)."""
    return assert_same_boxes


def assert_same_boxes(expected: YoloDataset, actual: YoloDataset, tolerance: float = 1.0) -> None:
    """Every image of ``expected`` is in ``actual`` with the same class names and boxes within 1 px."""
    want, got = boxes_by_name(expected), boxes_by_name(actual)
    assert sorted(want) == sorted(got)
    for name, objects in want.items():
        remaining = list(got[name])
        assert len(remaining) == len(objects), name
        for cls, box in objects:
            match = next(
                (i for i, (c, b) in enumerate(remaining) if c == cls and np.abs(b - box).max() <= tolerance),
                None,
            )
            assert match is not None, f"{name}: no {cls} at {box.tolist()} in {remaining}"
            remaining.pop(match)
