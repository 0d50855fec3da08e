"""Evaluate a model's ``Detections`` against ground truth: COCO mAP, per-class rows, PR curves, confusion.

The ``Detections`` of each image become an in-memory COCO dataset and results (image ids ``1..N``,
category id = class id + 1) and go through ``evaluate_coco``; everything else is derived from that
evaluation, so the per-class and overall numbers always agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from nexus.detections import Detections
from nexus.evaluation.coco_inputs import CocoInputError, check_iou_type
from nexus.evaluation.coco_metrics import CocoEvaluation, evaluate_coco_with_evaluator

RECALL_THRESHOLDS = np.linspace(0.0, 1.00, 101, endpoint=True)
"""COCO's 101 recall points, the x axis of every PR curve here."""


class ClassMetrics(NamedTuple):
    """One row of the per-class table; unpacks as ``(class_id, name, instances, ap50, ap50_95, p, r)``.

    ``precision`` and ``recall`` are read at the point of the class's IoU-0.50 precision/recall curve
    (COCO's interpolated curve, 101 recall points) with the highest F1. A class without ground truth
    has ``instances == 0`` and ``-1.0`` (COCO's "not measured") for AP and precision/recall.

    Example:
        >>> row = ClassMetrics(0, "cat", 3, 0.9, 0.6, 1.0, 0.67)
        >>> class_id, name, *_ = row
        >>> row.ap50_95
        0.6
    """

    class_id: int
    name: str
    instances: int
    ap50: float
    ap50_95: float
    precision: float
    recall: float


@dataclass
class DetectionEvaluation:
    """COCO evaluation of a model's predictions, with the tables and curves a report needs.

    Attributes:
        coco: the COCO statistics (``coco.stats["AP50"]`` is mAP@0.5, ``coco.stats["AP"]`` mAP@0.5:0.95).
        names: class id -> name.
        per_class: one row per class, ascending class id.
        confusion_matrix: ``(nc + 1, nc + 1)`` counts; rows are the true class, columns the predicted
            class, index ``nc`` is background (a missed object counts in the background column, a
            false detection in the background row). Predictions below ``conf_threshold`` are dropped
            and each remaining one, highest score first, is matched to the unmatched ground truth it
            overlaps most (IoU >= ``iou_threshold``), whatever its class.
        pr_curves: class id -> ``(recall, precision)`` at IoU 0.50 (101 points, COCO-interpolated),
            for classes with ground truth.
        conf_threshold: the confusion matrix's score threshold.
        iou_threshold: the confusion matrix's IoU threshold.

    Example:
        >>> gt = [Detections(xyxy=[[0, 0, 10, 10]], class_id=[0])]
        >>> pred = [Detections(xyxy=[[0, 0, 10, 10]], confidence=[0.9], class_id=[0])]
        >>> result = evaluate_detections(gt, pred, {0: "cat"}, [(20, 20)])
        >>> round(result.map50, 6), result.confusion_matrix.tolist()
        (1.0, [[1, 0], [0, 0]])
    """

    coco: CocoEvaluation
    names: dict[int, str]
    per_class: list[ClassMetrics]
    confusion_matrix: np.ndarray
    pr_curves: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45

    @property
    def map50(self) -> float:
        """mAP at IoU 0.50 (COCO ``AP50``)."""
        return self.coco.stats["AP50"]

    @property
    def map50_95(self) -> float:
        """mAP at IoU 0.50:0.95 (COCO ``AP``)."""
        return self.coco.stats["AP"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: COCO stats, per-class rows, the confusion matrix and the PR curves."""
        return {
            "coco": self.coco.to_dict(),
            "names": {str(k): v for k, v in self.names.items()},
            "per_class": [row._asdict() for row in self.per_class],
            "confusion_matrix": {
                "matrix": self.confusion_matrix.tolist(),
                "rows": "true class",
                "columns": "predicted class",
                "background_index": len(self.confusion_matrix) - 1,
                "conf_threshold": self.conf_threshold,
                "iou_threshold": self.iou_threshold,
            },
            "pr_curves": {
                str(k): {"recall": r.tolist(), "precision": p.tolist()}
                for k, (r, p) in self.pr_curves.items()
            },
        }


def _number_of_classes(
    names: Mapping[int, str], ground_truth: Sequence[Detections], predictions: Sequence[Detections]
) -> int:
    ids = [int(k) for k in names]
    for detections in (*ground_truth, *predictions):
        if len(detections):
            ids.append(int(detections.class_id.max()))
            if int(detections.class_id.min()) < 0:
                raise CocoInputError(f"class ids must be >= 0, got {int(detections.class_id.min())}")
    if any(i < 0 for i in ids):
        raise CocoInputError(f"class ids must be >= 0, got {min(ids)}")
    return max(ids) + 1 if ids else 0


def _check_masks(detections: Detections, size: tuple[int, int], what: str, index: int) -> None:
    if not len(detections):
        return
    if detections.mask is None:
        raise CocoInputError(f'iou_type "segm" needs masks, but {what} of image {index} has none')
    if tuple(detections.mask.shape[1:]) != tuple(size):
        raise CocoInputError(
            f"{what} masks of image {index} are {detections.mask.shape[1:]}, the image is {tuple(size)}"
        )


def detections_to_coco(
    ground_truth: Sequence[Detections],
    predictions: Sequence[Detections],
    names: Mapping[int, str],
    image_sizes: Sequence[tuple[int, int]],
    iou_type: str = "bbox",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An in-memory COCO dataset and results list: image ids ``1..N``, category id = class id + 1.

    Example:
        >>> gt, dt = detections_to_coco([Detections(xyxy=[[0, 0, 2, 2]], class_id=[1])],
        ...                             [Detections.empty()], {0: "a", 1: "b"}, [(4, 4)])
        >>> [c["id"] for c in gt["categories"]], gt["annotations"][0]["category_id"], dt
        ([1, 2], 2, [])
    """
    check_iou_type(iou_type)
    if not len(ground_truth) == len(predictions) == len(image_sizes):
        raise CocoInputError(
            f"need one ground truth, one prediction and one image size per image, got "
            f"{len(ground_truth)}, {len(predictions)} and {len(image_sizes)}"
        )
    nc = _number_of_classes(names, ground_truth, predictions)
    category_ids = {c: c + 1 for c in range(nc)}
    categories = [{"id": c + 1, "name": str(names.get(c, c))} for c in range(nc)]
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for index, (truth, predicted, size) in enumerate(
        zip(ground_truth, predictions, image_sizes, strict=True)
    ):
        height, width = (int(v) for v in size)
        image_id = index + 1
        images.append({"id": image_id, "height": height, "width": width})
        if iou_type == "segm":
            _check_masks(truth, (height, width), "ground truth", index)
            _check_masks(predicted, (height, width), "prediction", index)
        if len(predicted) and predicted.confidence is None:
            raise CocoInputError(f"predictions of image {index} have no confidence scores")
        if iou_type == "bbox":  # no RLE encoding needed; the ground-truth area stays the mask's (COCO's)
            gt_entries = _without_masks(truth).to_coco(image_id, category_ids, len(annotations) + 1)
            if truth.mask is not None:
                for entry, area in zip(gt_entries, truth.mask.sum(axis=(1, 2)), strict=True):
                    entry["area"] = float(area)
            dt_entries = _without_masks(predicted).to_coco(image_id, category_ids)
        else:
            gt_entries = truth.to_coco(image_id, category_ids, start_annotation_id=len(annotations) + 1)
            dt_entries = predicted.to_coco(image_id, category_ids)
        annotations.extend(gt_entries)
        results.extend(dt_entries)
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _without_masks(detections: Detections) -> Detections:
    if detections.mask is None:
        return detections
    return Detections(xyxy=detections.xyxy, confidence=detections.confidence, class_id=detections.class_id)


def _count_per_class(per_image: Sequence[Detections], nc: int) -> np.ndarray:
    counts = np.zeros(nc, dtype=np.int64)
    for detections in per_image:
        if len(detections):
            counts += np.bincount(detections.class_id, minlength=nc)[:nc]
    return counts


def _precision_recall_at_best_f1(curve: np.ndarray) -> tuple[float, float]:
    precision = np.clip(curve, 0.0, None)
    denominator = precision + RECALL_THRESHOLDS
    f1 = np.divide(
        2 * precision * RECALL_THRESHOLDS, denominator, out=np.zeros_like(precision), where=denominator > 0
    )
    best = int(np.argmax(f1))
    if f1[best] <= 0:
        return 0.0, 0.0
    return float(precision[best]), float(RECALL_THRESHOLDS[best])


def evaluate_detections(
    ground_truth: list[Detections],
    predictions: list[Detections],
    names: dict[int, str],
    image_sizes: list[tuple[int, int]],
    iou_type: str = "bbox",
    conf_threshold_for_confusion: float = 0.25,
    iou_threshold_for_confusion: float = 0.45,
) -> DetectionEvaluation:
    """COCO mAP, per-class rows, PR curves and a confusion matrix for a model's predictions.

    Args:
        ground_truth: the true objects of each image (``confidence`` ignored, masks for ``segm``).
        predictions: the model's detections of each image, with ``confidence``.
        names: class id -> class name.
        image_sizes: ``(height, width)`` of each image.
        iou_type: ``"bbox"`` or ``"segm"`` (needs ``mask`` on both sides).
        conf_threshold_for_confusion: predictions below it stay out of the confusion matrix.
        iou_threshold_for_confusion: the least IoU for a confusion-matrix match.

    Returns:
        The evaluation; ``result.coco.stats`` holds the 12 COCO numbers.

    Raises:
        CocoInputError: the lists differ in length, predictions lack scores, or ``segm`` lacks masks.

    Example:
        >>> gt = [Detections(xyxy=[[0, 0, 10, 10]], class_id=[0])]
        >>> pred = [Detections(xyxy=[[0, 0, 10, 10]], confidence=[0.9], class_id=[0])]
        >>> round(evaluate_detections(gt, pred, {0: "cat"}, [(20, 20)]).per_class[0].ap50, 6)
        1.0
    """
    dataset, results = detections_to_coco(ground_truth, predictions, names, image_sizes, iou_type)
    coco, evaluator = evaluate_coco_with_evaluator(dataset, results, iou_type)
    nc = len(dataset["categories"])
    max_det = max([1, *(len(p) for p in predictions)])
    confusion = evaluator.confusion_matrix(
        iou_thr=float(iou_threshold_for_confusion),
        max_det=max_det,
        min_score=float(conf_threshold_for_confusion),
    )
    matrix = np.asarray(confusion["matrix"], dtype=np.int64).reshape(nc + 1, nc + 1)
    if [int(c) for c in confusion["cat_ids"]] != list(range(1, nc + 1)):  # pragma: no cover - defensive
        raise RuntimeError(f"unexpected confusion-matrix categories {confusion['cat_ids']}")

    instances = _count_per_class(ground_truth, nc)
    predicted = _count_per_class(predictions, nc)
    all_names = {c: str(names.get(c, c)) for c in range(nc)}
    pr_curves: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    rows: list[ClassMetrics] = []
    at50 = 0  # COCO's first IoU threshold is 0.50
    for k, category in enumerate(coco.category_ids):
        class_id = category - 1
        ap = coco.per_class_ap[category]
        precision = recall = -1.0
        if instances[class_id] > 0 and coco.precision is not None:
            curve = np.clip(coco.precision[at50, :, k, 0, -1], 0.0, None)
            pr_curves[class_id] = (RECALL_THRESHOLDS.copy(), curve)
            precision, recall = _precision_recall_at_best_f1(curve)
        if class_id in names or instances[class_id] > 0 or predicted[class_id] > 0:
            rows.append(
                ClassMetrics(
                    class_id,
                    all_names[class_id],
                    int(instances[class_id]),
                    ap["AP50"],
                    ap["AP"],
                    precision,
                    recall,
                )
            )
    return DetectionEvaluation(
        coco=coco,
        names=all_names,
        per_class=rows,
        confusion_matrix=matrix,
        pr_curves=pr_curves,
        conf_threshold=float(conf_threshold_for_confusion),
        iou_threshold=float(iou_threshold_for_confusion),
    )
