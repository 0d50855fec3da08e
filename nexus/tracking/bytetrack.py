"""ByteTrack: associate high-score detections first, then rescue tracks with low-score ones."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nexus.detections import Detections
from nexus.tracking.matching import iou_matrix, linear_assignment
from nexus.tracking.track_table import LOST, NEW, TRACKED, Tracker, check_scores, class_gate, scores_of


@dataclass(frozen=True)
class ByteTrackConfig:
    """ByteTrack settings (defaults of the paper's MOT17 setup).

    Attributes:
        high_threshold: detections scoring at least this take part in the first association.
        low_threshold: detections between this and ``high_threshold`` only extend existing tracks.
        new_track_threshold: an unmatched high detection starts a track only above this score.
        match_iou: minimum IoU (times score) of the first association (the paper's 1 - 0.8).
        low_match_iou: minimum IoU of the second association (low-score detections).
        new_match_iou: minimum IoU to confirm a new track with its second detection.
        lost_track_buffer: frames (at 30 fps) a lost track waits to be found again.
        frame_rate: the video's fps; scales ``lost_track_buffer``.
        fuse_score: multiply IoU by the detection score in the first association.
        class_aware: never match a track with a detection of another class.

    Example:
        >>> ByteTrackConfig(lost_track_buffer=60).max_time_lost
        60
    """

    high_threshold: float = 0.5
    low_threshold: float = 0.1
    new_track_threshold: float = 0.6
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    new_match_iou: float = 0.3
    lost_track_buffer: int = 30
    frame_rate: float = 30.0
    fuse_score: bool = True
    class_aware: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.low_threshold <= self.high_threshold <= 1:
            raise ValueError(
                f"need 0 <= low_threshold ({self.low_threshold}) <= high_threshold "
                f"({self.high_threshold}) <= 1"
            )
        check_scores(self, "new_track_threshold")
        for name in ("match_iou", "low_match_iou", "new_match_iou"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.lost_track_buffer < 0 or not (self.frame_rate > 0 and math.isfinite(self.frame_rate)):
            raise ValueError(
                f"lost_track_buffer must be >= 0 frames and frame_rate a finite fps > 0, got "
                f"{self.lost_track_buffer} and {self.frame_rate}"
            )

    @property
    def max_time_lost(self) -> int:
        """Frames a lost track is kept, at this video's frame rate."""
        return int(self.frame_rate / 30.0 * self.lost_track_buffer)


class ByteTrackTracker(Tracker):
    """ByteTrack (Zhang et al., 2022) over a vectorized Kalman filter.

    Example:
        >>> tracker = ByteTrackTracker()
        >>> d = Detections(xyxy=[[10, 10, 50, 50]], confidence=[0.9])
        >>> tracker.update(d).tracker_id.tolist()
        [1]
    """

    def __init__(self, config: ByteTrackConfig | None = None) -> None:
        super().__init__()
        self.config = config or ByteTrackConfig()

    def _cost(
        self, iou: np.ndarray, rows: np.ndarray, dets: Detections, det_rows: np.ndarray, fuse: bool
    ) -> np.ndarray:
        part = iou[np.ix_(rows, det_rows)]
        if fuse:
            part = part * scores_of(dets)[det_rows][None, :]
        cost = 1.0 - part
        if self.config.class_aware:
            cost[class_gate(self.tracks.class_id[rows], dets.class_id[det_rows])] = np.inf
        return cost

    def update(self, detections: Detections) -> Detections:
        """Track one frame's detections; returns those on confirmed tracks with ``tracker_id``."""
        config = self.config
        self.frame_id += 1
        tracks = self.tracks
        scores = scores_of(detections)
        high = np.flatnonzero(scores >= config.high_threshold)
        low = np.flatnonzero((scores >= config.low_threshold) & (scores < config.high_threshold))
        tracks.predict()
        iou = iou_matrix(tracks.predicted_boxes(), detections.xyxy)  # once; every round takes a slice

        out_det: list[np.ndarray] = []
        out_trk: list[np.ndarray] = []

        # 1) confirmed (tracked or lost) tracks vs high-score detections
        pool = np.flatnonzero(tracks.state != NEW)
        matches, unmatched_pool, unmatched_high = linear_assignment(
            self._cost(iou, pool, detections, high, config.fuse_score), 1.0 - config.match_iou
        )
        trk, det = pool[matches[:, 0]], high[matches[:, 1]]
        tracks.state[trk] = TRACKED
        out_det.append(det)
        out_trk.append(trk)

        # 2) still-tracked tracks vs low-score detections
        remaining = pool[unmatched_pool]
        remaining = remaining[tracks.state[remaining] == TRACKED]
        matches, unmatched_rem, _ = linear_assignment(
            self._cost(iou, remaining, detections, low, False), 1.0 - config.low_match_iou
        )
        trk, det = remaining[matches[:, 0]], low[matches[:, 1]]
        out_det.append(det)
        out_trk.append(trk)
        tracks.state[remaining[unmatched_rem]] = LOST

        # 3) unconfirmed tracks vs the high detections left
        left_high = high[unmatched_high]
        unconfirmed = np.flatnonzero(tracks.state == NEW)
        matches, unmatched_new, unmatched_left = linear_assignment(
            self._cost(iou, unconfirmed, detections, left_high, config.fuse_score), 1.0 - config.new_match_iou
        )
        trk, det = unconfirmed[matches[:, 0]], left_high[matches[:, 1]]
        tracks.state[trk] = TRACKED
        out_det.append(det)
        out_trk.append(trk)

        # one Kalman correction for the matches of all three rounds (they are disjoint)
        det_rows = np.concatenate(out_det)
        trk_rows = np.concatenate(out_trk)
        tracks.correct(trk_rows, detections.xyxy[det_rows], scores[det_rows], self.frame_id)

        # 4) drop unconfirmed tracks that missed, and lost tracks past the buffer
        keep = np.ones(len(tracks), dtype=bool)
        keep[unconfirmed[unmatched_new]] = False
        keep &= ~((tracks.state == LOST) & (self.frame_id - tracks.last_frame > config.max_time_lost))
        if not keep.all():
            remap = np.cumsum(keep) - 1
            tracks.keep(keep)
            trk_rows = remap[trk_rows]

        # 5) new tracks (confirmed at once on the first frame, as in the paper)
        births = left_high[unmatched_left]
        births = births[scores[births] >= config.new_track_threshold]
        if len(births):
            state = TRACKED if self.frame_id == 1 else NEW
            rows = tracks.add(
                detections.xyxy[births], scores[births], detections.class_id[births], self.frame_id, state
            )
            if self.frame_id == 1:
                det_rows = np.concatenate([det_rows, births])
                trk_rows = np.concatenate([trk_rows, rows])
        return self._output(detections, det_rows, trk_rows)
