"""COCO mAP for boxes and masks through hotcoco, with pycocotools' exact 12 statistics.

hotcoco (a Rust port of pycocotools) matches, scores and accumulates; its ``precision`` and
``recall`` arrays are identical to pycocotools' on every case the parity tests generate. The 12
statistics are then reduced from those arrays here, with the same indexing and ``np.mean`` calls as
``pycocotools.cocoeval.COCOeval.summarize``, so they are bit-identical too (and nothing is printed:
hotcoco's own ``summarize`` writes to stdout from Rust).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import hotcoco
import numpy as np

from nexus.evaluation.coco_inputs import (
    CocoInputError,
    DetectionsSource,
    GroundTruthSource,
    prepare_coco_inputs,
)

COCO_STAT_NAMES: tuple[str, ...] = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)

# (average precision?, IoU threshold or None for 0.50:0.95, area label, index into max_dets)
_STAT_SPECS: tuple[tuple[bool, float | None, str, int], ...] = (
    (True, None, "all", 2),
    (True, 0.5, "all", 2),
    (True, 0.75, "all", 2),
    (True, None, "small", 2),
    (True, None, "medium", 2),
    (True, None, "large", 2),
    (False, None, "all", 0),
    (False, None, "all", 1),
    (False, None, "all", 2),
    (False, None, "small", 2),
    (False, None, "medium", 2),
    (False, None, "large", 2),
)
_DEFAULT_MAX_DETS = (1, 10, 100)


def _label(is_ap: bool, iou: float | None, area: str, max_det: int) -> str:
    title, kind = ("Average Precision", "(AP)") if is_ap else ("Average Recall", "(AR)")
    iou_text = "0.50:0.95" if iou is None else f"{iou:0.2f}"
    return f"{title:<18} {kind} @[ IoU={iou_text:<9} | area={area:>6s} | maxDets={max_det:>3d} ]"


COCO_STAT_LABELS: dict[str, str] = {
    name: _label(is_ap, iou, area, _DEFAULT_MAX_DETS[m])
    for name, (is_ap, iou, area, m) in zip(COCO_STAT_NAMES, _STAT_SPECS, strict=True)
}
"""Stat name -> pycocotools' long label, e.g. ``Average Precision  (AP) @[ IoU=0.50:0.95 | ...``."""


@dataclass
class CocoEvaluation:
    """The result of one COCO evaluation.

    Attributes:
        stats: the 12 COCO statistics keyed by ``COCO_STAT_NAMES``, in that order; ``-1.0`` where
            pycocotools gives ``-1`` (nothing to measure, e.g. no large objects).
        iou_type: ``"bbox"`` or ``"segm"``.
        per_class_ap: category id -> ``{"AP", "AP50", "AP75"}`` (area all, 100 detections);
            ``-1.0`` for a category without ground truth.
        precision: COCOeval's accumulated precision ``[T, R, K, A, M]`` (IoU thresholds, 101 recall
            thresholds, categories, areas all/small/medium/large, max detections 1/10/100).
        recall: COCOeval's recall ``[T, K, A, M]``.
        category_ids: the ``K`` axis: category ids in ascending order.
        category_names: category id -> name.
        scores: COCOeval's scores ``[T, R, K, A, M]``: the confidence at each recall threshold.

    Example:
        >>> gt = {"images": [{"id": 1}], "categories": [{"id": 1, "name": "cat"}],
        ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10],
        ...                        "area": 100, "iscrowd": 0}]}
        >>> dt = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 1}]
        >>> result = evaluate_coco(gt, dt)
        >>> round(result.stats["AP"], 6), round(result.per_class_ap[1]["AP50"], 6)
        (1.0, 1.0)
    """

    stats: dict[str, float]
    iou_type: str
    per_class_ap: dict[int, dict[str, float]]
    precision: np.ndarray | None = None
    recall: np.ndarray | None = None
    category_ids: list[int] = field(default_factory=list)
    category_names: dict[int, str] = field(default_factory=dict)
    scores: np.ndarray | None = None

    def summary_lines(self) -> list[str]:
        """The 12 lines pycocotools' ``summarize()`` prints, character for character."""
        return format_coco_summary(self.stats)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``iou_type``, ``stats`` and ``per_class`` (by category id, with names).

        Example:
            >>> CocoEvaluation({"AP": 0.5}, "bbox", {}).to_dict()
            {'iou_type': 'bbox', 'stats': {'AP': 0.5}, 'per_class': {}}
        """
        per_class = {
            str(cat): {"name": self.category_names.get(cat, str(cat)), **values}
            for cat, values in self.per_class_ap.items()
        }
        return {"iou_type": self.iou_type, "stats": dict(self.stats), "per_class": per_class}


def format_coco_summary(stats: dict[str, float]) -> list[str]:
    """Format statistics as pycocotools prints them: `` <label> = 0.123`` per line.

    Example:
        >>> format_coco_summary({"AP": 0.5})
        [' Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.500']
    """
    return [f" {COCO_STAT_LABELS[name]} = {stats[name]:0.3f}" for name in COCO_STAT_NAMES if name in stats]


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return -1.0 if len(valid) == 0 else float(np.mean(valid))


def _iou_index(iou_thresholds: np.ndarray, iou: float) -> np.ndarray:
    index = np.where(iou == iou_thresholds)[0]
    return index if len(index) else np.where(np.isclose(iou_thresholds, iou))[0]


def summarize_arrays(
    precision: np.ndarray,
    recall: np.ndarray,
    iou_thresholds: Sequence[float],
    area_labels: Sequence[str],
    max_dets: Sequence[int],
) -> dict[str, float]:
    """The 12 COCO statistics from accumulated arrays, computed exactly as pycocotools does.

    Args:
        precision: ``[T, R, K, A, M]``.
        recall: ``[T, K, A, M]``.
        iou_thresholds: the ``T`` axis.
        area_labels: the ``A`` axis, e.g. ``["all", "small", "medium", "large"]``.
        max_dets: the ``M`` axis, e.g. ``[1, 10, 100]``.

    Example:
        >>> p = np.ones((10, 101, 1, 4, 3)); r = np.ones((10, 1, 4, 3))
        >>> areas = ["all", "small", "medium", "large"]
        >>> summarize_arrays(p, r, np.linspace(.5, .95, 10), areas, [1, 10, 100])["AP"]
        1.0
    """
    thresholds = np.asarray(iou_thresholds, dtype=np.float64)
    stats: dict[str, float] = {}
    for name, (is_ap, iou, area, m) in zip(COCO_STAT_NAMES, _STAT_SPECS, strict=True):
        area_index = [i for i, label in enumerate(area_labels) if label == area]
        det_index = [i for i, value in enumerate(max_dets) if value == max_dets[m]]
        values = precision if is_ap else recall
        if iou is not None:
            values = values[_iou_index(thresholds, iou)]
        values = values[:, :, :, area_index, det_index] if is_ap else values[:, :, area_index, det_index]
        stats[name] = _mean_valid(values)
    return stats


def per_class_average_precision(
    precision: np.ndarray, iou_thresholds: Sequence[float], category_ids: Sequence[int]
) -> dict[int, dict[str, float]]:
    """AP, AP50 and AP75 per category (area all, the last max-detections setting).

    Example:
        >>> per_class_average_precision(np.ones((10, 101, 1, 4, 3)), np.linspace(.5, .95, 10), [7])
        {7: {'AP': 1.0, 'AP50': 1.0, 'AP75': 1.0}}
    """
    thresholds = np.asarray(iou_thresholds, dtype=np.float64)
    at50, at75 = _iou_index(thresholds, 0.5), _iou_index(thresholds, 0.75)
    result: dict[int, dict[str, float]] = {}
    for k, category in enumerate(category_ids):
        curve = precision[:, :, k, 0, -1]
        result[int(category)] = {
            "AP": _mean_valid(curve),
            "AP50": _mean_valid(curve[at50]),
            "AP75": _mean_valid(curve[at75]),
        }
    return result


def _run_hotcoco(
    dataset: dict[str, Any], results: list[dict[str, Any]], iou_type: str, labels: tuple[str, str]
):
    gt_label, dt_label = labels
    try:
        coco_gt = hotcoco.COCO(dataset)
    except (ValueError, TypeError, KeyError, OverflowError) as error:
        raise CocoInputError(_first_line(error), path=gt_label) from None
    try:
        coco_dt = coco_gt.load_res(results)
    except (ValueError, TypeError, KeyError, OverflowError) as error:
        raise CocoInputError(_first_line(error).replace("load_res[", "results[", 1), path=dt_label) from None
    evaluator = hotcoco.COCOeval(coco_gt, coco_dt, iou_type)
    try:
        evaluator.evaluate()
    except (ValueError, TypeError, KeyError, OverflowError) as error:
        raise CocoInputError(_first_line(error), path=f"{gt_label} / {dt_label}") from None
    evaluator.accumulate()
    return evaluator


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def evaluate_coco(
    ground_truth: GroundTruthSource, detections: DetectionsSource, iou_type: str = "bbox"
) -> CocoEvaluation:
    """COCO mAP of results against ground truth: pycocotools' numbers, hotcoco's speed.

    Args:
        ground_truth: a COCO dataset dict, or the path of its JSON file.
        detections: a list of COCO results (``image_id``, ``category_id``, ``bbox`` and/or
            ``segmentation``, ``score``), or the path of its JSON file.
        iou_type: ``"bbox"`` for boxes, ``"segm"`` for masks (polygons or RLE).

    Returns:
        The 12 statistics, per-category AP and the accumulated arrays.

    Raises:
        CocoInputError: a file is missing or not JSON, the ground truth is not a COCO dataset, a
            result is malformed or refers to an image the ground truth does not have, or
            ``iou_type`` is not ``bbox``/``segm``.

    Example:
        >>> gt = {"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": []}
        >>> evaluate_coco(gt, [], "bbox").stats["AP"]
        -1.0
    """
    return evaluate_coco_with_evaluator(ground_truth, detections, iou_type)[0]


def evaluate_coco_with_evaluator(
    ground_truth: GroundTruthSource, detections: DetectionsSource, iou_type: str = "bbox"
) -> tuple[CocoEvaluation, hotcoco.COCOeval]:
    """``evaluate_coco``, also returning hotcoco's evaluator for further diagnostics.

    The evaluator offers e.g. ``confusion_matrix(iou_thr, max_det, min_score)`` and
    ``tide_errors()``; its ``summarize()`` prints to stdout, so use ``CocoEvaluation.stats`` instead.

    Example:
        >>> gt = {"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": []}
        >>> result, evaluator = evaluate_coco_with_evaluator(gt, [])
        >>> evaluator.params.max_dets
        [1, 10, 100]
    """
    inputs = prepare_coco_inputs(ground_truth, detections, iou_type)
    evaluator = _run_hotcoco(
        inputs.ground_truth, inputs.detections, iou_type, (inputs.gt_label, inputs.dt_label)
    )
    accumulated = evaluator.eval or {}
    params = evaluator.params
    category_ids = [int(c) for c in params.cat_ids]
    precision = accumulated.get("precision")
    recall = accumulated.get("recall")
    if precision is None or recall is None:  # pragma: no cover - hotcoco always accumulates
        raise CocoInputError("hotcoco produced no accumulated results", path=inputs.gt_label)
    stats = summarize_arrays(precision, recall, params.iou_thrs, params.area_rng_lbl, params.max_dets)
    evaluation = CocoEvaluation(
        stats=stats,
        iou_type=iou_type,
        per_class_ap=per_class_average_precision(precision, params.iou_thrs, category_ids),
        precision=np.asarray(precision),
        recall=np.asarray(recall),
        category_ids=category_ids,
        category_names={c: inputs.category_names.get(c, str(c)) for c in category_ids},
        scores=None if accumulated.get("scores") is None else np.asarray(accumulated["scores"]),
    )
    return evaluation, evaluator
