"""``write_evaluation_plots`` writes three valid PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nexus.detections import Detections
from nexus.evaluation import DetectionEvaluation, evaluate_detections, write_evaluation_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _evaluation(with_truth: bool = True) -> DetectionEvaluation:
    rng = np.random.default_rng(0)
    truth, predicted = [], []
    for _ in range(3):
        xy = rng.uniform(0, 150, (4, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 40, (4, 2))], axis=1)
        classes = rng.integers(0, 3, 4)
        truth.append(Detections(xyxy=boxes, class_id=classes) if with_truth else Detections.empty())
        predicted.append(
            Detections(xyxy=boxes + rng.normal(0, 2, boxes.shape), confidence=rng.random(4), class_id=classes)
        )
    return evaluate_detections(truth, predicted, {0: "car", 1: "person", 2: "dog"}, [(200, 200)] * 3)


@pytest.mark.parametrize("with_truth", [True, False])
def test_three_valid_pngs(tmp_path: Path, with_truth: bool) -> None:
    out = tmp_path / "plots" / "nested"
    paths = write_evaluation_plots(_evaluation(with_truth), out)
    assert [p.name for p in paths] == ["pr_curve.png", "per_class_ap.png", "confusion_matrix.png"]
    for path in paths:
        assert path.parent == out
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) >= 200
