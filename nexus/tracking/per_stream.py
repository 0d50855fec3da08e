"""One tracker per stream: state is never shared between cameras, and each can be reset alone."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nexus.detections import Detections
from nexus.tracking.deepsort import DeepSORTTracker
from nexus.tracking.track_table import Tracker


class PerStreamTracker:
    """Keep a separate tracker for every stream name, created on first use.

    Args:
        factory: builds a fresh tracker, e.g. ``ByteTrackTracker`` or ``lambda: create_tracker("ocsort")``.

    Example:
        >>> from nexus.tracking import ByteTrackTracker
        >>> trackers = PerStreamTracker(ByteTrackTracker)
        >>> d = Detections(xyxy=[[0, 0, 10, 10]], confidence=[0.9])
        >>> trackers.update("gate", d).tracker_id.tolist(), trackers.update("dock", d).tracker_id.tolist()
        ([1], [1])
    """

    def __init__(self, factory: Callable[[], Tracker]) -> None:
        self.factory = factory
        self.trackers: dict[str, Tracker] = {}

    def update(self, stream: str, detections: Detections, frame: np.ndarray | None = None) -> Detections:
        """Track ``detections`` of ``stream`` (``frame`` feeds appearance trackers)."""
        tracker = self.trackers.get(stream)
        if tracker is None:
            tracker = self.trackers[stream] = self.factory()
        if isinstance(tracker, DeepSORTTracker):
            return tracker.update(detections, frame)
        return tracker.update(detections)

    def reset(self, stream: str | None = None) -> None:
        """Reset one stream's tracker (e.g. after a reconnect or a scene cut), or all of them."""
        targets = (
            self.trackers.values()
            if stream is None
            else [self.trackers[stream]]
            if stream in self.trackers
            else []
        )
        for tracker in targets:
            tracker.reset()

    def remove(self, stream: str) -> None:
        """Forget a stream that went away for good."""
        self.trackers.pop(stream, None)
