"""SORT: Kalman prediction + Hungarian IoU matching (Bewley et al., 2016)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nexus.detections import Detections
from nexus.tracking.matching import iou_matrix, linear_assignment
from nexus.tracking.track_table import NEW, TRACKED, Tracker, check_scores, class_gate, scores_of


@dataclass(frozen=True)
class SORTConfig:
    """SORT settings.

    Attributes:
        min_confidence: detections below this score are ignored.
        match_iou: minimum IoU between a track's prediction and a detection.
        max_age: frames a track survives without a detection.
        min_hits: consecutive hits that confirm a track (all tracks are reported during the first
            frames); once confirmed, a track is reported on every frame it is matched (the reference
            code re-requires ``min_hits`` after every miss, which drops many true boxes).
        class_aware: never match across classes.

    Example:
        >>> SORTConfig(max_age=3).max_age
        3
    """

    min_confidence: float = 0.3
    match_iou: float = 0.3
    max_age: int = 1
    min_hits: int = 3
    class_aware: bool = False

    def __post_init__(self) -> None:
        check_scores(self, "min_confidence")
        if not 0 <= self.match_iou < 1:
            raise ValueError(f"match_iou must be in [0, 1), got {self.match_iou}")
        if self.max_age < 0 or self.min_hits < 1:
            raise ValueError(f"need max_age >= 0 and min_hits >= 1, got {self.max_age}, {self.min_hits}")


class SORTTracker(Tracker):
    """Simple Online and Realtime Tracking.

    Example:
        >>> tracker = SORTTracker()
        >>> tracker.update(Detections(xyxy=[[0, 0, 20, 20]], confidence=[0.9])).tracker_id.tolist()
        [1]
    """

    def __init__(self, config: SORTConfig | None = None) -> None:
        super().__init__()
        self.config = config or SORTConfig()

    def update(self, detections: Detections) -> Detections:
        """Track one frame's detections; returns those on reported tracks with ``tracker_id``."""
        config = self.config
        self.frame_id += 1
        tracks = self.tracks
        scores = scores_of(detections)
        candidates = np.flatnonzero(scores >= config.min_confidence)
        tracks.predict()
        cost = 1.0 - iou_matrix(tracks.predicted_boxes(), detections.xyxy[candidates])
        if config.class_aware:
            cost[class_gate(tracks.class_id, detections.class_id[candidates])] = np.inf
        matches, _, unmatched = linear_assignment(cost, 1.0 - config.match_iou)
        trk, det = matches[:, 0], candidates[matches[:, 1]]
        tracks.correct(trk, detections.xyxy[det], scores[det], self.frame_id)
        births = candidates[unmatched]
        new_rows = tracks.add(
            detections.xyxy[births], scores[births], detections.class_id[births], self.frame_id
        )
        det_rows = np.concatenate([det, births])
        trk_rows = np.concatenate([trk, new_rows])
        keep = tracks.time_since_update <= config.max_age
        tracks.state[(tracks.state == NEW) & (tracks.hit_streak >= config.min_hits)] = TRACKED  # confirmed
        reported = (tracks.state == TRACKED) | (self.frame_id <= config.min_hits)
        show = reported[trk_rows] & (tracks.time_since_update[trk_rows] == 0)
        det_rows, trk_rows = det_rows[show], trk_rows[show]
        out = self._output(detections, det_rows, trk_rows)
        tracks.keep(keep)
        return out
