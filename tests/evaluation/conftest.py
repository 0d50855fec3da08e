"""Shared helpers for the evaluation tests: pycocotools as the reference implementation."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable
from typing import Any

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def pycocotools_eval(gt: dict[str, Any], results: list[dict[str, Any]], iou_type: str) -> COCOeval:
    """pycocotools' evaluation, silenced; an empty results list (which ``loadRes`` rejects) as no results."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        else:
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


@pytest.fixture
def reference_eval() -> Callable[[dict[str, Any], list[dict[str, Any]], str], COCOeval]:
    """``reference_eval(gt, results, iou_type)`` -> pycocotools' ``COCOeval`` after ``summarize()``."""
    return pycocotools_eval
