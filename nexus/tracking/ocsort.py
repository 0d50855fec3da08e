"""OC-SORT: observation-centric SORT (Cao et al., 2023) for non-linear motion and occlusion.

Adds to SORT: a velocity-direction consistency term in the association cost (OCM), a second
association against each track's last observation (OCR), and, when a track is found again after a
gap, re-running the filter over a straight virtual path between the two observations (ORU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nexus.detections import Detections
from nexus.tracking import kalman
from nexus.tracking.matching import iou_matrix, linear_assignment
from nexus.tracking.track_table import NEW, TRACKED, Tracker, check_scores, class_gate, scores_of


@dataclass(frozen=True)
class OCSORTConfig:
    """OC-SORT settings (the paper's defaults).

    Attributes:
        min_confidence: detections below this score are ignored.
        new_track_threshold: an unmatched detection starts a track only above this score.
        match_iou: minimum IoU of an association.
        max_age: frames a track survives without a detection.
        min_hits: consecutive hits that confirm a track; once confirmed, a track is reported on every
            frame it is matched (the reference code re-requires ``min_hits`` after every miss).
        delta_t: observation gap used to estimate each track's direction.
        inertia: weight of the direction-consistency term.
        class_aware: never match across classes.

    Example:
        >>> OCSORTConfig(max_age=60).delta_t
        3
    """

    min_confidence: float = 0.3
    new_track_threshold: float = 0.6
    match_iou: float = 0.3
    max_age: int = 30
    min_hits: int = 3
    delta_t: int = 3
    inertia: float = 0.2
    class_aware: bool = False

    def __post_init__(self) -> None:
        check_scores(self, "min_confidence", "new_track_threshold")
        if not 0 <= self.match_iou < 1:
            raise ValueError(f"match_iou must be in [0, 1), got {self.match_iou}")
        if self.max_age < 0 or self.min_hits < 1 or self.delta_t < 1:
            raise ValueError("need max_age >= 0, min_hits >= 1 and delta_t >= 1")
        if not (self.inertia >= 0 and math.isfinite(self.inertia)):
            raise ValueError(f"inertia must be a finite number >= 0, got {self.inertia}")


def _centers(boxes: np.ndarray) -> np.ndarray:
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)


def _direction(from_boxes: np.ndarray, to_boxes: np.ndarray) -> np.ndarray:
    delta = _centers(to_boxes) - _centers(from_boxes)
    norm = np.linalg.norm(delta, axis=1, keepdims=True) + 1e-6
    return delta / norm


class OCSORTTracker(Tracker):
    """Observation-centric SORT over a vectorized Kalman filter.

    Example:
        >>> tracker = OCSORTTracker()
        >>> tracker.update(Detections(xyxy=[[0, 0, 20, 20]], confidence=[0.9])).tracker_id.tolist()
        [1]
    """

    def __init__(self, config: OCSORTConfig | None = None) -> None:
        super().__init__()
        self.config = config or OCSORTConfig()

    def _history(self) -> np.ndarray:
        return self.tracks.extra["history"]  # (N, delta_t, 4) recent observations, oldest first

    def _velocity_cost(self, rows: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        tracks = self.tracks
        if not len(rows) or not len(boxes):
            return np.zeros((len(rows), len(boxes)))
        history = self._history()[rows]
        reference = history[:, 0]  # oldest remembered observation
        valid = ~np.isnan(reference[:, 0]) & (tracks.hits[rows] > 1)
        reference = np.where(valid[:, None], reference, tracks.last_box[rows])
        velocity = _direction(reference, tracks.last_box[rows])  # (T, 2)
        to_det = _centers(boxes)[None, :, :] - _centers(reference)[:, None, :]  # (T, D, 2)
        to_det /= np.linalg.norm(to_det, axis=2, keepdims=True) + 1e-6
        cos = np.clip(np.einsum("tk,tdk->td", velocity, to_det), -1, 1)
        angle = (np.pi / 2 - np.abs(np.arccos(cos))) / np.pi
        return np.where(valid[:, None], angle * scores[None, :] * self.config.inertia, 0.0)

    def _reupdate(self, rows: np.ndarray, boxes: np.ndarray) -> None:
        """ORU: for tracks found again after a gap, replay a straight path from the last observation."""
        tracks = self.tracks
        for row, box in zip(rows.tolist(), boxes, strict=True):
            gap = int(tracks.time_since_update[row])
            if gap < 2:
                continue
            mean = tracks.extra["saved_mean"][row : row + 1]
            cov = tracks.extra["saved_cov"][row : row + 1]
            last = tracks.last_box[row]
            for step in range(1, gap):
                virtual = last + (box - last) * step / gap
                mean, cov = kalman.predict(mean, cov)
                mean, cov = kalman.update(mean, cov, kalman.xyxy_to_xyah(virtual[None]))
            mean, cov = kalman.predict(mean, cov)
            tracks.mean[row], tracks.cov[row] = mean[0], cov[0]

    def _correct(self, rows: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> None:
        if not len(rows):
            return
        tracks = self.tracks
        self._reupdate(rows, boxes)
        history = self._history()
        history[rows] = np.concatenate([history[rows, 1:], tracks.last_box[rows][:, None]], axis=1)
        tracks.correct(rows, boxes, scores, self.frame_id)
        tracks.extra["saved_mean"][rows] = tracks.mean[rows]
        tracks.extra["saved_cov"][rows] = tracks.cov[rows]

    def update(self, detections: Detections) -> Detections:
        """Track one frame's detections; returns those on reported tracks with ``tracker_id``."""
        config = self.config
        self.frame_id += 1
        tracks = self.tracks
        scores = scores_of(detections)
        candidates = np.flatnonzero(scores >= config.min_confidence)
        tracks.predict()
        boxes = detections.xyxy[candidates].astype(np.float64)
        all_rows = np.arange(len(tracks))

        # 1) IoU against predictions + direction consistency (OCM)
        iou = iou_matrix(tracks.predicted_boxes(), boxes)
        cost = -(iou + self._velocity_cost(all_rows, boxes, scores[candidates]))
        cost[iou < config.match_iou] = np.inf
        if config.class_aware:
            cost[class_gate(tracks.class_id, detections.class_id[candidates])] = np.inf
        matches, unmatched_trk, unmatched_det = linear_assignment(cost + 2.0, 2.0)
        self._correct(matches[:, 0], boxes[matches[:, 1]], scores[candidates[matches[:, 1]]])
        det_rows = [candidates[matches[:, 1]]]
        trk_rows = [matches[:, 0]]

        # 2) OCR: leftovers against each track's last observation
        iou = iou_matrix(tracks.last_box[unmatched_trk], boxes[unmatched_det])
        cost = 1.0 - iou
        if config.class_aware:
            cost[
                class_gate(tracks.class_id[unmatched_trk], detections.class_id[candidates[unmatched_det]])
            ] = np.inf
        second, _, left = linear_assignment(cost, 1.0 - config.match_iou)
        trk, det = unmatched_trk[second[:, 0]], unmatched_det[second[:, 1]]
        self._correct(trk, boxes[det], scores[candidates[det]])
        det_rows.append(candidates[det])
        trk_rows.append(trk)

        # 3) births
        births = candidates[unmatched_det[left]]
        births = births[scores[births] >= config.new_track_threshold]
        k = len(births)
        extra = {
            "history": np.full((k, config.delta_t, 4), np.nan),
            "saved_mean": np.zeros((k, 8)),
            "saved_cov": np.zeros((k, 8, 8)),
        }
        new_rows = tracks.add(
            detections.xyxy[births],
            scores[births],
            detections.class_id[births],
            self.frame_id,
            NEW,
            extra,
        )
        tracks.extra["saved_mean"][new_rows] = tracks.mean[new_rows]
        tracks.extra["saved_cov"][new_rows] = tracks.cov[new_rows]
        det_all = np.concatenate([*det_rows, births])
        trk_all = np.concatenate([*trk_rows, new_rows])
        tracks.state[(tracks.state == NEW) & (tracks.hit_streak >= config.min_hits)] = TRACKED  # confirmed
        reported = (tracks.state == TRACKED) | (self.frame_id <= config.min_hits)
        show = reported[trk_all] & (tracks.time_since_update[trk_all] == 0)
        out = self._output(detections, det_all[show], trk_all[show])
        tracks.keep(tracks.time_since_update <= config.max_age)
        return out
