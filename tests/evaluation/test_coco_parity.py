"""``evaluate_coco`` (hotcoco) against pycocotools on generated COCO cases: the 12 stats must be equal."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from nexus.evaluation import COCO_STAT_NAMES, evaluate_coco

ReferenceEval = Callable[[dict[str, Any], list[dict[str, Any]], str], Any]
GT_ONLY_CATEGORY, DT_ONLY_CATEGORY = 5, 6
SIDES = {"small": (3.0, 30.0), "medium": (34.0, 92.0), "large": (100.0, 180.0)}


def _polygon(rng: np.random.Generator, x: float, y: float, w: float, h: float) -> list[float]:
    k = int(rng.integers(5, 10))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    radius = rng.uniform(0.6, 1.0, k)
    xs = x + w / 2 + np.cos(angles) * radius * w / 2
    ys = y + h / 2 + np.sin(angles) * radius * h / 2
    return np.round(np.stack([xs, ys], 1).ravel(), 2).tolist()


def _ellipse(x: float, y: float, w: float, h: float, height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    dx = (xx + 0.5 - (x + w / 2)) / max(w / 2, 0.5)
    dy = (yy + 0.5 - (y + h / 2)) / max(h / 2, 0.5)
    return dx**2 + dy**2 <= 1.0


def _rle(mask: np.ndarray, compressed: bool = True) -> dict[str, Any]:
    if compressed:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    flat = mask.ravel(order="F").astype(np.uint8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    return {"size": list(mask.shape), "counts": [0, *counts] if flat[0] else counts}


def make_coco_case(
    seed: int, iou_type: str = "bbox", dt_with_bbox: bool = True, n_images: int = 10
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A seeded COCO ground truth and results list with every case pycocotools treats specially.

    Image ``i``: ``i % 5 == 0`` has no ground truth, ``i % 5 == 1`` no detections, ``i % 7 == 0``
    neither ground truth (so may be fully empty); ``i % 5 == 2`` gets 130 false positives (> 100 per
    image). About 12% of ground truth is crowd (``iscrowd=1``, uncompressed RLE for ``segm``); boxes
    are small, medium and large; half the scores are rounded to tenths (ties within and across
    images); category 5 has ground truth only, category 6 detections only. ``segm`` ground truth mixes
    polygons, uncompressed and compressed RLE; results are compressed RLE, with or without ``bbox``.
    """
    rng = np.random.default_rng(seed)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for image_id in range(1, n_images + 1):
        height, width = (int(v) for v in rng.integers(120, 220, 2))
        images.append({"id": image_id, "height": height, "width": width, "file_name": f"{image_id}.jpg"})
        role = image_id % 5
        n_gt = 0 if role == 0 or image_id % 7 == 0 else int(rng.integers(1, 8))
        objects = []
        for _ in range(n_gt):
            lo, hi = SIDES[str(rng.choice(list(SIDES)))]
            w, h = float(min(rng.uniform(lo, hi), width - 2)), float(min(rng.uniform(lo, hi), height - 2))
            x, y = float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h))
            crowd = int(rng.random() < 0.12)
            category = int(rng.choice([1, 2, 3, 4, GT_ONLY_CATEGORY]))
            box = [round(x, 2), round(y, 2), round(w, 2), round(h, 2)]
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": category, "bbox": box}
            ann.update(iscrowd=crowd, area=w * h)
            if iou_type == "segm":
                style = 1 if crowd else int(rng.integers(3))
                if style == 0:
                    ann["segmentation"] = [_polygon(rng, x, y, w, h)]
                else:
                    ann["segmentation"] = _rle(_ellipse(x, y, w, h, height, width), compressed=style == 2)
                ann["area"] = w * h * np.pi / 4
            annotations.append(ann)
            objects.append((category, x, y, w, h))
        if role == 1:
            continue
        wanted = []
        for category, x, y, w, h in objects:
            if rng.random() < 0.8:
                if rng.random() > 0.85 or category == GT_ONLY_CATEGORY:
                    category = int(rng.choice([1, 2, 3, 4, DT_ONLY_CATEGORY]))
                sx, sy = rng.uniform(0.85, 1.15, 2)
                dx, dy = rng.normal(0, 0.05, 2)
                wanted.append((category, x + dx * w, y + dy * h, w * sx, h * sy, rng.uniform(0.4, 1.0)))
        for _ in range(130 if role == 2 else int(rng.integers(0, 5))):
            w, h = (float(v) for v in rng.uniform(4, 100, 2))
            x, y = rng.uniform(0, width - 4), rng.uniform(0, height - 4)
            wanted.append(
                (int(rng.choice([1, 2, 3, 4, DT_ONLY_CATEGORY])), x, y, w, h, rng.uniform(0.0, 0.8))
            )
        for category, x, y, w, h, confidence in wanted:
            x, y = float(np.clip(x, 0, width - 2)), float(np.clip(y, 0, height - 2))
            w, h = float(min(w, width - x)), float(min(h, height - y))
            score = round(float(confidence), 1) if rng.random() < 0.5 else float(confidence)
            result: dict[str, Any] = {"image_id": image_id, "category_id": category, "score": score}
            if iou_type == "bbox" or dt_with_bbox:
                result["bbox"] = [x, y, w, h]
            if iou_type == "segm":
                result["segmentation"] = _rle(_ellipse(x, y, w, h, height, width))
            results.append(result)
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, DT_ONLY_CATEGORY + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def assert_same_stats(
    reference_eval: ReferenceEval, gt: dict[str, Any], results: list[dict[str, Any]], iou_type: str
) -> None:
    expected = np.asarray(reference_eval(gt, results, iou_type).stats, dtype=np.float64)
    ours = evaluate_coco(gt, results, iou_type)
    got = np.array([ours.stats[name] for name in COCO_STAT_NAMES])
    assert list(ours.stats) == list(COCO_STAT_NAMES)
    np.testing.assert_array_equal(got, expected)


CASES = [(seed, "bbox", True) for seed in range(8)]
CASES += [(seed, "segm", True) for seed in range(4)]
CASES += [(seed, "segm", False) for seed in range(4, 8)]


@pytest.mark.parametrize(("seed", "iou_type", "dt_with_bbox"), CASES)
def test_twelve_stats_equal_pycocotools(
    seed: int, iou_type: str, dt_with_bbox: bool, reference_eval: ReferenceEval
) -> None:
    gt, results = make_coco_case(seed, iou_type, dt_with_bbox)
    assert_same_stats(reference_eval, gt, results, iou_type)


def test_generator_covers_the_hard_cases() -> None:
    gt, results = make_coco_case(0, "segm")
    anns = gt["annotations"]
    per_image = np.bincount([r["image_id"] for r in results], minlength=len(gt["images"]) + 1)
    assert any(a["iscrowd"] for a in anns)
    assert {im["id"] for im in gt["images"]} - {a["image_id"] for a in anns}  # images without ground truth
    assert (per_image[1:] == 0).any() and per_image.max() > 100
    scores = [r["score"] for r in results]
    assert len(set(scores)) < len(scores)  # ties
    areas = np.array([a["bbox"][2] * a["bbox"][3] for a in anns])
    assert (areas < 32**2).any() and ((areas > 32**2) & (areas < 96**2)).any() and (areas > 96**2).any()
    assert GT_ONLY_CATEGORY not in {r["category_id"] for r in results}
    assert DT_ONLY_CATEGORY not in {a["category_id"] for a in anns}
    assert DT_ONLY_CATEGORY in {r["category_id"] for r in results}
    kinds = {
        type(a["segmentation"]).__name__ + type(a["segmentation"].get("counts", "")).__name__
        if isinstance(a["segmentation"], dict)
        else "polygon"
        for a in anns
    }
    assert kinds == {"polygon", "dictlist", "dictstr"}


def test_all_scores_tied(reference_eval: ReferenceEval) -> None:
    gt, results = make_coco_case(11)
    for result in results:
        result["score"] = 0.5
    assert_same_stats(reference_eval, gt, results, "bbox")


def test_no_detections_at_all(reference_eval: ReferenceEval) -> None:
    gt, _ = make_coco_case(3)
    assert_same_stats(reference_eval, gt, [], "bbox")
    assert evaluate_coco(gt, [], "bbox").stats["AP"] == 0.0


def test_no_ground_truth_at_all(reference_eval: ReferenceEval) -> None:
    gt, results = make_coco_case(4)
    gt["annotations"] = []
    assert_same_stats(reference_eval, gt, results, "bbox")
    assert set(evaluate_coco(gt, results).stats.values()) == {-1.0}


def test_detections_of_unknown_categories_are_ignored_like_pycocotools(reference_eval: ReferenceEval) -> None:
    gt, results = make_coco_case(5)
    results[0]["category_id"] = 99
    assert_same_stats(reference_eval, gt, results, "bbox")


@pytest.mark.parametrize("copies", [2, 10])
def test_duplicate_annotation_ids_behave_like_pycocotools(copies: int, reference_eval: ReferenceEval) -> None:
    gt, results = make_coco_case(1)
    for ann in gt["annotations"][:copies]:
        ann["id"] = 1
    assert_same_stats(reference_eval, gt, results, "bbox")


def test_segm_with_box_only_results_uses_pycocotools_box_polygons(reference_eval: ReferenceEval) -> None:
    gt, results = make_coco_case(2, "segm")
    boxes_only = [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
    assert_same_stats(reference_eval, gt, boxes_only, "segm")


def test_segm_results_where_only_later_ones_have_boxes(reference_eval: ReferenceEval) -> None:
    gt, with_boxes = make_coco_case(6, "segm", dt_with_bbox=True)
    mixed = [r if i % 2 else {k: v for k, v in r.items() if k != "bbox"} for i, r in enumerate(with_boxes)]
    assert_same_stats(reference_eval, gt, mixed, "segm")


def test_per_class_ap_matches_pycocotools_precision(reference_eval: ReferenceEval) -> None:
    gt, results = make_coco_case(7)
    reference = reference_eval(gt, results, "bbox")
    ours = evaluate_coco(gt, results)
    assert ours.category_ids == sorted(c["id"] for c in gt["categories"])
    np.testing.assert_array_equal(ours.precision, reference.eval["precision"])
    for k, category in enumerate(ours.category_ids):
        curve = reference.eval["precision"][:, :, k, 0, -1]
        expected = np.mean(curve[curve > -1]) if (curve > -1).any() else -1.0
        assert ours.per_class_ap[category]["AP"] == expected
        at50 = curve[0][curve[0] > -1]
        assert ours.per_class_ap[category]["AP50"] == (np.mean(at50) if len(at50) else -1.0)
    assert ours.per_class_ap[DT_ONLY_CATEGORY] == {"AP": -1.0, "AP50": -1.0, "AP75": -1.0}
    assert ours.per_class_ap[GT_ONLY_CATEGORY]["AP"] == 0.0


def test_summary_lines_are_pycocotools_output(reference_eval: ReferenceEval) -> None:
    gt, results = make_coco_case(8)
    reference = reference_eval(gt, results, "bbox")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        reference.summarize()
    assert evaluate_coco(gt, results).summary_lines() == printed.getvalue().splitlines()
