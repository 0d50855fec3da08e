"""dataset_stats and write_stats_plot."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from nexus.datasets import YoloDataset, dataset_stats, write_stats_plot
from nexus.datasets.stats import distribution
from nexus.errors import DatasetError


@pytest.fixture
def known(tmp_path: Path) -> YoloDataset:
    """Three images with hand-written labels: sizes and counts are known exactly."""
    root = tmp_path / "ds"
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    cv2.imwrite(str(root / "images/train/a.png"), np.zeros((50, 100, 3), np.uint8))
    cv2.imwrite(str(root / "images/train/b.png"), np.zeros((40, 40, 3), np.uint8))
    cv2.imwrite(str(root / "images/val/c.png"), np.zeros((50, 100, 3), np.uint8))
    (root / "labels/train/a.txt").write_text("0 0.5 0.5 0.1 0.2\n1 0.5 0.5 0.2 0.4\n0 0.2 0.2 0.1 0.1\n")
    (root / "labels/val/c.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (root / "dataset.yaml").write_text(
        "names: {0: cat, 1: dog, 2: eel}\ntrain: images/train\nval: images/val\n"
    )
    return YoloDataset.load(root)


def test_distribution() -> None:
    assert distribution([]) == {
        "count": 0, "mean": None, "min": None, "p5": None, "p25": None, "p50": None, "p75": None, "p95": None,
        "max": None,
    }  # fmt: skip
    d = distribution([1, 2, 3, 4, 5])
    assert (d["count"], d["min"], d["p50"], d["max"], d["mean"]) == (5, 1.0, 3.0, 5.0, 3.0)


def test_stats_counts_and_sizes(known: YoloDataset) -> None:
    summary = dataset_stats(known).to_dict()
    json.dumps(summary)  # JSON-ready
    assert summary["images"] == 3 and summary["instances"] == 4
    assert summary["splits"]["train"] == {
        "images": 2,
        "instances": 3,
        "background_images": 1,
        "classes": {
            "cat": {"instances": 2, "images": 1},
            "dog": {"instances": 1, "images": 1},
            "eel": {"instances": 0, "images": 0},
        },
        "objects_per_image": distribution([3, 0]),
    }
    assert summary["classes"] == {
        "cat": {"instances": 2, "images": 1},
        "dog": {"instances": 2, "images": 2},
        "eel": {"instances": 0, "images": 0},
    }
    boxes = summary["boxes"]
    assert boxes["width"]["count"] == 4
    assert (boxes["width"]["min"], boxes["width"]["max"]) == (10.0, 50.0)
    assert (boxes["height"]["min"], boxes["height"]["max"]) == (5.0, 25.0)
    assert boxes["area"]["max"] == 1250.0
    assert boxes["relative_area"]["max"] == 0.25
    assert summary["image_sizes"] == {"100x50": 2, "40x40": 1}
    assert summary["image_width"]["max"] == 100
    assert summary["objects_per_image"]["histogram"] == {"0": 1, "1": 1, "3": 1}


def test_stats_of_synthetic(shapes: YoloDataset) -> None:
    summary = dataset_stats(shapes).to_dict()
    assert {k: v["images"] for k, v in summary["splits"].items()} == {"train": 6, "val": 2}
    assert summary["image_sizes"] == {"64x64": 8}
    assert summary["task"] == "segment"
    assert sum(c["instances"] for c in summary["classes"].values()) == summary["instances"]


def test_plot_is_a_png(known: YoloDataset, tmp_path: Path) -> None:
    out = write_stats_plot(dataset_stats(known), tmp_path / "plots" / "stats.png")
    image = cv2.imread(str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.shape[0] > 400 and image.shape[1] > 800


def test_corrupt_image_is_named(known: YoloDataset) -> None:
    (known.root / "images/val/c.png").write_bytes(b"nope")
    with pytest.raises(DatasetError, match=r"c.png: not an image .*nexus data validate"):
        dataset_stats(known)
