"""Evaluation: COCO mAP for boxes and masks with pycocotools-identical numbers, at hotcoco's speed.

``evaluate_coco`` takes COCO files or dicts; ``evaluate_detections`` takes a model's ``Detections``
and adds per-class rows, PR curves and a confusion matrix; ``write_evaluation_plots`` draws them.

Example:
    >>> gt = {"images": [{"id": 1}], "categories": [{"id": 1, "name": "cat"}],
    ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 8, 8],
    ...                        "area": 64, "iscrowd": 0}]}
    >>> result = evaluate_coco(gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 8, 8], "score": 0.9}])
    >>> round(result.stats["AP"], 6)
    1.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nexus.evaluation.coco_inputs import CocoInputError
from nexus.evaluation.coco_metrics import (
    COCO_STAT_LABELS,
    COCO_STAT_NAMES,
    CocoEvaluation,
    evaluate_coco,
    format_coco_summary,
)
from nexus.evaluation.detection_metrics import ClassMetrics, DetectionEvaluation, evaluate_detections

if TYPE_CHECKING:
    from nexus.evaluation.plots import write_evaluation_plots

__all__ = [
    "COCO_STAT_LABELS",
    "COCO_STAT_NAMES",
    "ClassMetrics",
    "CocoEvaluation",
    "CocoInputError",
    "DetectionEvaluation",
    "evaluate_coco",
    "evaluate_detections",
    "format_coco_summary",
    "write_evaluation_plots",
]


def __getattr__(name: str) -> Any:
    # matplotlib is imported only when plots are asked for (it costs ~0.3 s at start-up).
    if name == "write_evaluation_plots":
        from nexus.evaluation.plots import write_evaluation_plots

        return write_evaluation_plots
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
