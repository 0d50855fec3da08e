"""``evaluate_detections``: per-class rows, PR curves and the confusion matrix on hand-built cases."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from nexus.detections import Detections
from nexus.evaluation import COCO_STAT_NAMES, CocoInputError, evaluate_detections
from nexus.evaluation.detection_metrics import detections_to_coco

NAMES = {0: "apple", 1: "banana", 2: "cherry"}
SIZES = [(200, 200), (200, 200), (200, 200)]


def _hand_built() -> tuple[list[Detections], list[Detections]]:
    """Image 0: 1 TP (apple), 1 wrong class (banana seen as cherry), 1 missed (cherry), 1 false positive
    (banana on background), 1 apple below the confusion threshold. Image 1: nothing. Image 2: an apple
    nobody found."""
    truth = [
        Detections(xyxy=[[0, 0, 20, 20], [50, 50, 70, 70], [100, 100, 120, 120]], class_id=[0, 1, 2]),
        Detections.empty(),
        Detections(xyxy=[[10, 10, 60, 60]], class_id=[0]),
    ]
    predicted = [
        Detections(
            xyxy=[[1, 1, 21, 21], [50, 50, 70, 70], [150, 150, 170, 170], [150, 10, 170, 30]],
            confidence=[0.9, 0.8, 0.7, 0.1],
            class_id=[0, 2, 1, 0],
        ),
        Detections.empty(),
        Detections.empty(),
    ]
    return truth, predicted


def test_confusion_matrix_of_a_known_case() -> None:
    truth, predicted = _hand_built()
    result = evaluate_detections(truth, predicted, NAMES, SIZES)
    # rows: true apple, banana, cherry, background; columns: predicted, same order
    expected = [
        [1, 0, 0, 1],  # apple: one found, one missed (image 2)
        [0, 0, 1, 0],  # banana predicted as cherry
        [0, 0, 0, 1],  # cherry missed
        [0, 1, 0, 0],  # a banana where there is nothing; the 0.1 apple is below 0.25
    ]
    assert result.confusion_matrix.tolist() == expected
    assert result.confusion_matrix.shape == (len(NAMES) + 1, len(NAMES) + 1)


def test_confusion_thresholds_are_applied() -> None:
    truth, predicted = _hand_built()
    low = evaluate_detections(truth, predicted, NAMES, SIZES, conf_threshold_for_confusion=0.05)
    assert low.confusion_matrix[3, 0] == 1  # the 0.1 apple now counts, as a false positive
    strict = evaluate_detections(truth, predicted, NAMES, SIZES, iou_threshold_for_confusion=0.9)
    assert strict.confusion_matrix[0, 0] == 0 and strict.confusion_matrix[0, 3] == 2  # IoU 0.82 < 0.9


def test_per_class_rows_and_pr_curves() -> None:
    truth, predicted = _hand_built()
    result = evaluate_detections(truth, predicted, NAMES, SIZES)
    rows = {row.class_id: row for row in result.per_class}
    assert [row.name for row in result.per_class] == ["apple", "banana", "cherry"]
    assert [rows[c].instances for c in range(3)] == [2, 1, 1]
    # apple: the 0.9 box matches (IoU 361/439 = 0.82, so at 7 of the 10 thresholds); the other is missed:
    # precision 1 on the 51 of COCO's 101 recall points up to 0.5
    assert rows[0].ap50 == pytest.approx(51 / 101, abs=1e-9)
    assert rows[0].ap50_95 == pytest.approx(0.7 * 51 / 101, abs=1e-9)
    assert (rows[0].precision, rows[0].recall) == (pytest.approx(1.0), 0.5)
    assert rows[1].ap50 == rows[2].ap50 == 0.0
    assert rows[1].precision == rows[1].recall == 0.0
    assert result.map50 == pytest.approx(51 / 101 / 3)
    assert result.coco.per_class_ap[1]["AP50"] == rows[0].ap50  # category id = class id + 1
    recall, precision = result.pr_curves[0]
    assert recall.shape == precision.shape == (101,)
    assert precision[recall <= 0.5] == pytest.approx(1.0)
    assert (precision[recall > 0.5] == 0).all()
    assert set(result.pr_curves) == {0, 1, 2}


def test_class_without_ground_truth_and_unnamed_predicted_class() -> None:
    truth = [Detections(xyxy=[[0, 0, 30, 30]], class_id=[0])]
    predicted = [Detections(xyxy=[[0, 0, 30, 30], [40, 40, 60, 60]], confidence=[0.9, 0.5], class_id=[0, 4])]
    result = evaluate_detections(truth, predicted, {0: "a", 1: "b"}, [(100, 100)])
    rows = {row.class_id: row for row in result.per_class}
    assert sorted(rows) == [0, 1, 4]
    assert rows[1].instances == 0 and rows[1].ap50 == -1.0 and rows[1].precision == -1.0
    assert rows[4].name == "4" and rows[4].ap50_95 == -1.0
    assert result.confusion_matrix.shape == (6, 6) and result.confusion_matrix[5, 4] == 1
    assert set(result.pr_curves) == {0}


def test_segm_through_masks_matches_pycocotools(reference_eval: Callable[..., Any]) -> None:
    rng = np.random.default_rng(3)
    truth, predicted, sizes = [], [], []
    for _ in range(4):
        height, width = 60, 80
        yy, xx = np.mgrid[0:height, 0:width]
        gt_masks, dt_masks, boxes, scores = [], [], [], []
        for _ in range(3):
            cx, cy, r = rng.uniform(15, 65), rng.uniform(15, 45), rng.uniform(5, 14)
            gt_masks.append((xx - cx) ** 2 + (yy - cy) ** 2 <= r**2)
            shift = rng.normal(0, 2, 2)
            dt_masks.append(
                (xx - cx - shift[0]) ** 2 + (yy - cy - shift[1]) ** 2 <= (r * rng.uniform(0.8, 1.2)) ** 2
            )
            boxes.append([cx - r, cy - r, cx + r, cy + r])
            scores.append(rng.uniform(0.3, 1.0))
        classes = rng.integers(0, 2, 3)
        truth.append(Detections(xyxy=boxes, class_id=classes, mask=np.stack(gt_masks)))
        predicted.append(Detections(xyxy=boxes, confidence=scores, class_id=classes, mask=np.stack(dt_masks)))
        sizes.append((height, width))
    names = {0: "round", 1: "circle"}
    result = evaluate_detections(truth, predicted, names, sizes, iou_type="segm")
    gt, dt = detections_to_coco(truth, predicted, names, sizes, "segm")
    expected = reference_eval(gt, dt, "segm").stats.tolist()
    assert [result.coco.stats[n] for n in COCO_STAT_NAMES] == expected
    assert 0 < result.map50_95 < 1
    assert result.coco.iou_type == "segm"
    boxes_only = evaluate_detections(truth, predicted, names, sizes, iou_type="bbox")
    assert boxes_only.coco.stats["AP"] == pytest.approx(1.0)  # same boxes on both sides


def test_to_dict_is_json() -> None:
    truth, predicted = _hand_built()
    document = json.loads(json.dumps(evaluate_detections(truth, predicted, NAMES, SIZES).to_dict()))
    assert document["confusion_matrix"]["matrix"][1][2] == 1
    assert document["per_class"][0]["name"] == "apple" and "ap50_95" in document["per_class"][0]
    assert len(document["pr_curves"]["0"]["precision"]) == 101
    assert list(document["coco"]["stats"]) == list(COCO_STAT_NAMES)


@pytest.mark.parametrize(
    ("truth", "predicted", "sizes", "iou_type", "message"),
    [
        ([Detections.empty()], [], [(10, 10)], "bbox", "one ground truth, one prediction and one image size"),
        ([Detections.empty()], [Detections(xyxy=[[0, 0, 1, 1]])], [(10, 10)], "bbox", "no confidence"),
        ([Detections(xyxy=[[0, 0, 1, 1]])], [Detections.empty()], [(10, 10)], "segm", "needs masks"),
        (
            [Detections(xyxy=[[0, 0, 1, 1]], mask=np.ones((1, 5, 5), bool))],
            [Detections.empty()],
            [(10, 10)],
            "segm",
            "masks of image 0 are (5, 5)",
        ),
        ([Detections.empty()], [Detections.empty()], [(10, 10)], "obb", "iou_type must be one of"),
    ],
)
def test_bad_detections(
    truth: list[Detections],
    predicted: list[Detections],
    sizes: list[tuple[int, int]],
    iou_type: str,
    message: str,
) -> None:
    with pytest.raises(CocoInputError) as excinfo:
        evaluate_detections(truth, predicted, {0: "x"}, sizes, iou_type=iou_type)
    assert message in str(excinfo.value)
