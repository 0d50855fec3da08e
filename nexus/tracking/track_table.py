"""Track state of a tracker as arrays (one row per track), so every step is vectorized."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from nexus.detections import Detections
from nexus.tracking import kalman

NEW, TRACKED, LOST = 0, 1, 2


class TrackTable:
    """All tracks of one tracker: Kalman means/covariances plus per-track counters.

    Columns: ``mean (N, 8)``, ``cov (N, 8, 8)``, ``track_id`` (0 until the track is confirmed),
    ``state`` (NEW / TRACKED / LOST), ``hits``, ``hit_streak``, ``age``, ``time_since_update``,
    ``start_frame``, ``last_frame``, ``score``, ``class_id``, ``last_box (N, 4)``, and optional extra
    columns in ``extra`` (e.g. appearance features).
    """

    def __init__(self) -> None:
        self.mean = np.zeros((0, 8))
        self.cov = np.zeros((0, 8, 8))
        self.track_id = np.zeros(0, dtype=np.int64)
        self.state = np.zeros(0, dtype=np.int8)
        self.hits = np.zeros(0, dtype=np.int64)
        self.hit_streak = np.zeros(0, dtype=np.int64)
        self.age = np.zeros(0, dtype=np.int64)
        self.time_since_update = np.zeros(0, dtype=np.int64)
        self.start_frame = np.zeros(0, dtype=np.int64)
        self.last_frame = np.zeros(0, dtype=np.int64)
        self.score = np.zeros(0)
        self.class_id = np.zeros(0, dtype=np.int64)
        self.last_box = np.zeros((0, 4))
        self.extra: dict[str, np.ndarray] = {}

    _COLUMNS = (
        "mean", "cov", "track_id", "state", "hits", "hit_streak", "age", "time_since_update",
        "start_frame", "last_frame", "score", "class_id", "last_box",
    )  # fmt: skip

    def __len__(self) -> int:
        return len(self.track_id)

    def add(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        class_id: np.ndarray,
        frame: int,
        state: int = NEW,
        extra: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Start tracks from ``(K, 4)`` xyxy boxes; returns their row indices."""
        k = len(boxes)
        start = len(self)
        mean, cov = kalman.initiate(kalman.xyxy_to_xyah(boxes))
        new = {
            "mean": mean,
            "cov": cov,
            "track_id": np.zeros(k, dtype=np.int64),
            "state": np.full(k, state, dtype=np.int8),
            "hits": np.ones(k, dtype=np.int64),
            "hit_streak": np.ones(k, dtype=np.int64),
            "age": np.ones(k, dtype=np.int64),
            "time_since_update": np.zeros(k, dtype=np.int64),
            "start_frame": np.full(k, frame, dtype=np.int64),
            "last_frame": np.full(k, frame, dtype=np.int64),
            "score": np.asarray(scores, dtype=np.float64),
            "class_id": np.asarray(class_id, dtype=np.int64),
            "last_box": np.asarray(boxes, dtype=np.float64),
        }
        for name, value in new.items():
            setattr(self, name, np.concatenate([getattr(self, name), value]))
        for name, value in (extra or {}).items():
            column = self.extra.get(name)
            if column is None:
                column = np.zeros((start, *value.shape[1:]), dtype=value.dtype)
            self.extra[name] = np.concatenate([column, value]) if k else column
        return np.arange(start, start + k)

    def keep(self, rows: np.ndarray) -> None:
        """Keep only the tracks where the boolean mask ``rows`` is true."""
        for name in self._COLUMNS:
            setattr(self, name, getattr(self, name)[rows])
        for name, value in self.extra.items():
            self.extra[name] = value[rows]

    def predict(self) -> None:
        """Advance every track one frame."""
        self.mean, self.cov = kalman.predict(self.mean, self.cov)
        self.age += 1
        self.time_since_update += 1

    def correct(self, rows: np.ndarray, boxes: np.ndarray, scores: np.ndarray, frame: int) -> None:
        """Update tracks ``rows`` with their matched ``(K, 4)`` xyxy boxes."""
        if not len(rows):
            return
        mean, cov = kalman.update(self.mean[rows], self.cov[rows], kalman.xyxy_to_xyah(boxes))
        self.mean[rows], self.cov[rows] = mean, cov
        self.hits[rows] += 1
        self.hit_streak[rows] = np.where(self.time_since_update[rows] <= 1, self.hit_streak[rows] + 1, 1)
        self.time_since_update[rows] = 0
        self.last_frame[rows] = frame
        self.score[rows] = scores
        self.last_box[rows] = boxes

    def predicted_boxes(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Current Kalman boxes (xyxy) of ``rows`` (all tracks when omitted)."""
        mean = self.mean if rows is None else self.mean[rows]
        return kalman.xyah_to_xyxy(mean[:, :4])


class Tracker(ABC):
    """The interface of every tracker: ``update`` once per frame, ``reset`` between streams.

    ``update`` returns the input detections that belong to a confirmed track, in input order, with
    ``tracker_id`` set; masks, class ids and ``data`` travel with them (the input is indexed).
    """

    def __init__(self) -> None:
        self.tracks = TrackTable()
        self.frame_id = 0
        self._next_id = 1

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (e.g. for a new stream or a scene cut)."""
        self.tracks = TrackTable()
        self.frame_id = 0
        self._next_id = 1

    @abstractmethod
    def update(self, detections: Detections) -> Detections:
        """Associate this frame's detections with the tracks; returns the tracked detections."""

    def _assign_ids(self, rows: np.ndarray) -> np.ndarray:
        """Give tracks ``rows`` that have none the next ids; return the ids of all of ``rows``."""
        missing = rows[self.tracks.track_id[rows] == 0]
        if len(missing):
            self.tracks.track_id[missing] = np.arange(self._next_id, self._next_id + len(missing))
            self._next_id += len(missing)
        return self.tracks.track_id[rows]

    def _output(self, detections: Detections, det_rows: np.ndarray, track_rows: np.ndarray) -> Detections:
        if not len(det_rows):
            empty = detections[np.zeros(0, dtype=np.int64)]
            empty.tracker_id = np.zeros(0, dtype=np.int64)
            return empty
        order = np.argsort(det_rows, kind="stable")
        det_rows, track_rows = det_rows[order], track_rows[order]
        ids = self._assign_ids(track_rows)
        out = detections[det_rows]
        out.tracker_id = ids.astype(np.int64)
        return out


def scores_of(detections: Detections) -> np.ndarray:
    """Detection confidences as float64 (1.0 when the detections carry none)."""
    if detections.confidence is None:
        return np.ones(len(detections))
    return detections.confidence.astype(np.float64)


def check_scores(config: object, *names: str) -> None:
    """Raise ``ValueError`` unless each named score threshold of ``config`` lies in [0, 1].

    A threshold above 1 (or NaN) silently drops every detection, so the tracker reports no track.

    Example:
        >>> check_scores(SimpleNamespace(min_confidence=1.5), "min_confidence")  # doctest: +SKIP
        Traceback (most recent call last):
        ValueError: min_confidence must be a score in [0, 1], got 1.5
    """
    for name in names:
        value = getattr(config, name)
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be a score in [0, 1], got {value}")


def class_gate(track_classes: np.ndarray, det_classes: np.ndarray) -> np.ndarray:
    """Boolean ``(tracks, detections)``: True where the classes differ (such pairs must not match)."""
    return track_classes[:, None] != det_classes[None, :]
