"""DeepSORT-style tracking: Kalman motion gating + appearance (re-id) matching, then IoU matching.

Appearance comes from an ``Embedder`` run on the frame (``update(detections, frame)``) or from
``detections.data["embedding"]`` when the detector already produced features. Each track keeps an
exponential moving average of its features (the StrongSORT refinement of DeepSORT's gallery).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nexus.detections import Detections
from nexus.tracking import kalman
from nexus.tracking.matching import iou_matrix, linear_assignment
from nexus.tracking.reid import Embedder
from nexus.tracking.track_table import NEW, TRACKED, Tracker, check_scores, class_gate, scores_of


@dataclass(frozen=True)
class DeepSORTConfig:
    """DeepSORT settings.

    Attributes:
        min_confidence: detections below this score are ignored.
        max_cosine_distance: appearance matches farther than this are rejected.
        gate: squared Mahalanobis distance above which a detection cannot match a track (chi-square
            95% with 4 degrees of freedom by default).
        match_iou: minimum IoU of the second (IoU) association.
        max_age: frames a confirmed track survives without a detection.
        n_init: hits in a row that confirm a new track.
        feature_momentum: weight of the old feature in the moving average (0 keeps only the newest).
        class_aware: never match across classes.

    Example:
        >>> DeepSORTConfig(max_cosine_distance=0.3).n_init
        3
    """

    min_confidence: float = 0.3
    max_cosine_distance: float = 0.2
    gate: float = kalman.CHI2_95_4DOF
    match_iou: float = 0.3
    max_age: int = 30
    n_init: int = 3
    feature_momentum: float = 0.9
    class_aware: bool = False

    def __post_init__(self) -> None:
        check_scores(self, "min_confidence")
        if not 0 <= self.match_iou < 1:
            raise ValueError(f"match_iou must be in [0, 1), got {self.match_iou}")
        if not 0 < self.max_cosine_distance <= 2:
            raise ValueError(f"max_cosine_distance must be in (0, 2], got {self.max_cosine_distance}")
        if not 0 <= self.feature_momentum < 1:
            raise ValueError(f"feature_momentum must be in [0, 1), got {self.feature_momentum}")
        if self.max_age < 0 or self.n_init < 1 or not (self.gate > 0 and math.isfinite(self.gate)):
            raise ValueError(
                f"need max_age >= 0, n_init >= 1 and a finite gate > 0, got {self.max_age}, {self.n_init}, "
                f"{self.gate}"
            )


class DeepSORTTracker(Tracker):
    """Appearance + motion tracker in the manner of DeepSORT (Wojke et al., 2017).

    Args:
        embedder: computes appearance features from the frame; optional when detections carry
            ``data["embedding"]``.
        config: settings.

    Example:
        >>> tracker = DeepSORTTracker(OnnxReIdEmbedder("reid.onnx"))  # doctest: +SKIP
        >>> tracked = tracker.update(detections, frame)  # doctest: +SKIP
    """

    def __init__(self, embedder: Embedder | None = None, config: DeepSORTConfig | None = None) -> None:
        super().__init__()
        self.embedder = embedder
        self.config = config or DeepSORTConfig()

    def _features(self, detections: Detections, frame: np.ndarray | None) -> np.ndarray:
        if "embedding" in detections.data:
            features = np.asarray(detections.data["embedding"], dtype=np.float32).reshape(len(detections), -1)
        elif self.embedder is not None and frame is not None:
            features = self.embedder.embed(frame, detections.xyxy)
        else:
            raise ValueError(
                "DeepSORTTracker needs appearance: pass the frame (update(detections, frame)) with an "
                "embedder, or put features in detections.data['embedding']"
            )
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        return features / np.maximum(norms, 1e-12)

    def update(self, detections: Detections, frame: np.ndarray | None = None) -> Detections:
        """Track one frame; ``frame`` (BGR) feeds the embedder. Returns detections on confirmed tracks."""
        config = self.config
        self.frame_id += 1
        tracks = self.tracks
        scores = scores_of(detections)
        candidates = np.flatnonzero(scores >= config.min_confidence)
        subset = detections[candidates]
        features = self._features(subset, frame) if len(subset) else np.zeros((0, 1), np.float32)
        boxes = subset.xyxy.astype(np.float64)
        tracks.predict()

        # 1) confirmed tracks: appearance cost, gated by motion
        confirmed = np.flatnonzero(tracks.state == TRACKED)
        if len(confirmed) and len(boxes):
            gallery = tracks.extra["feature"][confirmed]
            cost = 1.0 - gallery @ features.T
            motion = kalman.gating_distance(
                tracks.mean[confirmed], tracks.cov[confirmed], kalman.xyxy_to_xyah(boxes)
            )
            cost[motion > config.gate] = np.inf
            if config.class_aware:
                cost[class_gate(tracks.class_id[confirmed], subset.class_id)] = np.inf
        else:
            cost = np.zeros((len(confirmed), len(boxes)))
        matches, unmatched_confirmed, unmatched_det = linear_assignment(cost, config.max_cosine_distance)
        trk, det = confirmed[matches[:, 0]], matches[:, 1]

        # 2) new tracks and tracks missed for one frame: IoU
        left = confirmed[unmatched_confirmed]
        iou_pool = np.concatenate(
            [np.flatnonzero(tracks.state == NEW), left[tracks.time_since_update[left] == 1]]
        )
        iou = iou_matrix(tracks.predicted_boxes(iou_pool), boxes[unmatched_det])
        cost = 1.0 - iou
        if config.class_aware:
            cost[class_gate(tracks.class_id[iou_pool], subset.class_id[unmatched_det])] = np.inf
        second, _, still = linear_assignment(cost, 1.0 - config.match_iou)
        trk = np.concatenate([trk, iou_pool[second[:, 0]]])
        det = np.concatenate([det, unmatched_det[second[:, 1]]]).astype(np.int64)
        tracks.correct(trk, boxes[det], scores[candidates[det]], self.frame_id)
        if len(trk):
            m = config.feature_momentum
            blended = m * tracks.extra["feature"][trk] + (1 - m) * features[det]
            tracks.extra["feature"][trk] = blended / np.linalg.norm(blended, axis=1, keepdims=True).clip(
                1e-12
            )
        promote = trk[(tracks.state[trk] == NEW) & (tracks.hits[trk] >= config.n_init)]
        tracks.state[promote] = TRACKED

        # 3) births and deaths
        births = unmatched_det[still]
        new_rows = tracks.add(
            boxes[births],
            scores[candidates[births]],
            subset.class_id[births],
            self.frame_id,
            TRACKED if config.n_init == 1 else NEW,
            {"feature": features[births]},
        )
        det_all = np.concatenate([det, births])
        trk_all = np.concatenate([trk, new_rows])
        show = tracks.state[trk_all] == TRACKED
        out = self._output(detections, candidates[det_all[show]], trk_all[show])
        dead = ((tracks.state == NEW) & (tracks.time_since_update > 0)) | (
            tracks.time_since_update > config.max_age
        )
        tracks.keep(~dead)
        return out
