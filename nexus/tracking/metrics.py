"""Tracking metrics: CLEAR MOT (MOTA, MOTP) and IDF1 via motmetrics, HOTA via TrackEval."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nexus.detections import Detections
from nexus.errors import NexusError
from nexus.tracking.matching import iou_matrix


@dataclass(frozen=True)
class MOTMetrics:
    """Scores of a tracker output against ground truth (all as fractions, 1.0 is perfect).

    Attributes:
        mota: multiple object tracking accuracy, ``1 - (FN + FP + IDSW) / GT``.
        motp: mean IoU of matched pairs (higher is better; motmetrics reports 1 - IoU).
        idf1: identity F1 score.
        hota: higher order tracking accuracy (mean over IoU thresholds 0.05..0.95).
        deta: HOTA's detection accuracy.
        assa: HOTA's association accuracy.
        precision: matched predictions / predictions.
        recall: matched ground truth / ground truth.
        id_switches: identity switches.
        fragmentations: track fragmentations.
        false_positives: unmatched predictions.
        misses: unmatched ground-truth boxes.
        gt_objects: distinct ground-truth ids.
        predicted_tracks: distinct predicted ids.
        frames: frames evaluated.

    Example:
        >>> m = evaluate_mot(gt_frames, gt_frames)  # doctest: +SKIP
        >>> m.mota, m.idf1  # doctest: +SKIP
        (1.0, 1.0)
    """

    mota: float
    motp: float
    idf1: float
    hota: float
    deta: float
    assa: float
    precision: float
    recall: float
    id_switches: int
    fragmentations: int
    false_positives: int
    misses: int
    gt_objects: int
    predicted_tracks: int
    frames: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _check(frames: Sequence[Detections], what: str) -> None:
    for t, d in enumerate(frames):
        if len(d) and d.tracker_id is None:
            raise NexusError(
                f"{what} frame {t + 1} has boxes without track ids: evaluate tracks, not detections"
            )


def evaluate_mot(
    ground_truth: Sequence[Detections],
    predictions: Sequence[Detections],
    iou_threshold: float = 0.5,
) -> MOTMetrics:
    """Score tracks against ground truth, frame by frame (lists are padded with empty frames).

    Args:
        ground_truth: per frame, ground-truth boxes with ``tracker_id``.
        predictions: per frame, tracker output with ``tracker_id``.
        iou_threshold: minimum IoU of a match for MOTA/IDF1 (HOTA sweeps its own thresholds).

    Example:
        >>> from nexus.tracking.mot_format import read_mot
        >>> evaluate_mot(read_mot("gt.txt"), read_mot("tracks.txt")).mota  # doctest: +SKIP
        0.93
    """
    import motmetrics as mm
    from trackeval.metrics import HOTA

    if not 0 < iou_threshold < 1:
        raise NexusError(f"iou_threshold must be in (0, 1), got {iou_threshold}")
    _check(ground_truth, "ground truth")
    _check(predictions, "prediction")
    frames = max(len(ground_truth), len(predictions))
    empty = Detections.empty()
    empty.tracker_id = np.zeros(0, dtype=np.int64)

    def at(seq: Sequence[Detections], t: int) -> Detections:
        return seq[t] if t < len(seq) else empty

    accumulator = mm.MOTAccumulator(auto_id=True)
    gt_index: dict[int, int] = {}
    pr_index: dict[int, int] = {}
    hota_gt_ids, hota_pr_ids, similarity = [], [], []
    for t in range(frames):
        gt, pr = at(ground_truth, t), at(predictions, t)
        gt_ids = gt.tracker_id if gt.tracker_id is not None else np.zeros(0, np.int64)
        pr_ids = pr.tracker_id if pr.tracker_id is not None else np.zeros(0, np.int64)
        iou = iou_matrix(gt.xyxy, pr.xyxy)
        distance = np.where(iou >= iou_threshold, 1.0 - iou, np.nan)
        accumulator.update(gt_ids.tolist(), pr_ids.tolist(), distance)
        hota_gt_ids.append(np.array([gt_index.setdefault(int(i), len(gt_index)) for i in gt_ids], dtype=int))
        hota_pr_ids.append(np.array([pr_index.setdefault(int(i), len(pr_index)) for i in pr_ids], dtype=int))
        similarity.append(iou)
    handler = mm.metrics.create()
    summary = handler.compute(
        accumulator,
        metrics=[
            "mota",
            "motp",
            "idf1",
            "precision",
            "recall",
            "num_switches",
            "num_fragmentations",
            "num_false_positives",
            "num_misses",
        ],
        name="sequence",
    ).iloc[0]
    hota_data = {
        "num_timesteps": frames,
        "num_gt_ids": len(gt_index),
        "num_tracker_ids": len(pr_index),
        "num_gt_dets": int(sum(len(i) for i in hota_gt_ids)),
        "num_tracker_dets": int(sum(len(i) for i in hota_pr_ids)),
        "gt_ids": hota_gt_ids,
        "tracker_ids": hota_pr_ids,
        "similarity_scores": similarity,
    }
    hota = HOTA().eval_sequence(hota_data)

    def number(value: Any, default: float = 0.0) -> float:
        value = float(value)
        return default if np.isnan(value) else value

    return MOTMetrics(
        mota=number(summary["mota"]),
        motp=1.0 - number(summary["motp"], 1.0),
        idf1=number(summary["idf1"]),
        hota=float(np.mean(hota["HOTA"])),
        deta=float(np.mean(hota["DetA"])),
        assa=float(np.mean(hota["AssA"])),
        precision=number(summary["precision"]),
        recall=number(summary["recall"]),
        id_switches=int(summary["num_switches"]),
        fragmentations=int(summary["num_fragmentations"]),
        false_positives=int(summary["num_false_positives"]),
        misses=int(summary["num_misses"]),
        gt_objects=len(gt_index),
        predicted_tracks=len(pr_index),
        frames=frames,
    )
