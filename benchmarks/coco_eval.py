"""Benchmark: ``nexus.evaluation.evaluate_coco`` (hotcoco) vs pycocotools (and faster-coco-eval).

Generates a seeded COCO ground truth and results (default 5,000 images x ~20 detections), runs every
library on it in this one process, checks that the 12 statistics are identical to pycocotools', and
prints the times and the speed-up. Exits 1 if any statistic differs.

Usage:
    .venv/bin/python benchmarks/coco_eval.py               # 5,000 images
    .venv/bin/python benchmarks/coco_eval.py --images 500  # quicker

Each library gets its own deep copy of the inputs, made before its clock starts (pycocotools'
``loadRes`` writes into the result dicts). Timed: building the datasets from the in-memory dicts,
loading the results, evaluate, accumulate and the 12 statistics.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from nexus.evaluation import COCO_STAT_NAMES, evaluate_coco

WIDTH, HEIGHT, CATEGORIES = 640, 480, 10


def make_dataset(
    n_images: int, detections_per_image: int = 20, seed: int = 0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A COCO ground truth (3-9 objects per image, 1% crowd) and ~``detections_per_image`` results each.

    Example:
        >>> gt, dt = make_dataset(2)
        >>> len(gt["images"]), 30 <= len(dt) <= 50
        (2, True)
    """
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "width": WIDTH, "height": HEIGHT, "file_name": f"{image_id:06d}.jpg"})
        n_objects = int(rng.integers(3, 10))
        sizes = rng.uniform(6, 220, (n_objects, 2))
        corners = rng.uniform(0, 1, (n_objects, 2)) * ([WIDTH, HEIGHT] - sizes)
        classes = rng.integers(1, CATEGORIES + 1, n_objects)
        for (x, y), (w, h), category in zip(corners, sizes, classes, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(category),
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "area": float(w * h),
                    "iscrowd": int(rng.random() < 0.01),
                }
            )
            if rng.random() < 0.85:  # found, with some box noise and sometimes the wrong class
                noise = rng.normal(0, 0.06, 4) * [w, h, w, h]
                label = int(category) if rng.random() < 0.9 else int(rng.integers(1, CATEGORIES + 1))
                box = [float(x + noise[0]), float(y + noise[1]), float(w + noise[2]), float(h + noise[3])]
                score = round(float(rng.uniform(0.3, 1.0)), 3)
                results.append({"image_id": image_id, "category_id": label, "bbox": box, "score": score})
        n_false = max(0, detections_per_image - int(0.85 * n_objects) + int(rng.integers(-3, 4)))
        for _ in range(n_false):
            w, h = rng.uniform(6, 200, 2)
            x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(rng.integers(1, CATEGORIES + 1)),
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "score": round(float(rng.uniform(0.0, 0.8)), 3),  # rounded: plenty of ties
                }
            )
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, CATEGORIES + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def run_pycocotools(gt: dict[str, Any], dt: list[dict[str, Any]]) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(dt), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def run_faster_coco_eval(gt: dict[str, Any], dt: list[dict[str, Any]]) -> list[float]:
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt)
        evaluator = COCOeval_faster(coco_gt, coco_gt.loadRes(dt), "bbox", print_function=lambda *_: None)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats[:12]]


def run_nexus(gt: dict[str, Any], dt: list[dict[str, Any]]) -> list[float]:
    stats = evaluate_coco(gt, dt, "bbox").stats
    return [stats[name] for name in COCO_STAT_NAMES]


def _timed(
    run: Callable[[dict[str, Any], list[dict[str, Any]]], list[float]], gt: Any, dt: Any, repeats: int
):
    best, stats = float("inf"), []
    for _ in range(repeats):
        gt_copy, dt_copy = copy.deepcopy(gt), copy.deepcopy(dt)
        start = time.perf_counter()
        stats = run(gt_copy, dt_copy)
        best = min(best, time.perf_counter() - start)
    return best, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000, help="number of images (default 5000)")
    parser.add_argument("--detections", type=int, default=20, help="detections per image (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the fast libraries; best is kept")
    parser.add_argument("--no-faster-coco-eval", action="store_true", help="skip faster-coco-eval")
    args = parser.parse_args(argv)

    gt, dt = make_dataset(args.images, args.detections, args.seed)
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} ground-truth boxes, {len(dt)} detections")
    reference_time, reference = _timed(run_pycocotools, gt, dt, repeats=1)
    runs = {"pycocotools 2.0": (reference_time, reference)}
    if not args.no_faster_coco_eval:
        runs["faster-coco-eval"] = _timed(run_faster_coco_eval, gt, dt, args.repeats)
    runs["nexus (hotcoco)"] = _timed(run_nexus, gt, dt, args.repeats)

    identical = True
    print(f"{'library':<18} {'seconds':>8} {'speed-up':>9}  12 stats vs pycocotools")
    for name, (seconds, stats) in runs.items():
        same = stats == reference
        identical &= same
        difference = (
            "identical" if same else f"DIFFER (max {np.max(np.abs(np.subtract(stats, reference))):.3g})"
        )
        print(f"{name:<18} {seconds:8.3f} {reference_time / seconds:8.1f}x  {difference}")
    print("AP {:.4f}  AP50 {:.4f}  AR100 {:.4f}".format(*(reference[i] for i in (0, 1, 8))))
    nexus_time = runs["nexus (hotcoco)"][0]
    print(f"speed-up of nexus over pycocotools: {reference_time / nexus_time:.1f}x (target >= 50x)")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
