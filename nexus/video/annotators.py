"""Draw detections and tracks on BGR frames: boxes, labels and motion traces (supervision style)."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from nexus.detections import Detections

_PALETTE = np.array(
    [
        (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
        (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
        (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203),
    ],
    dtype=np.int64,
)  # fmt: skip


def color_for(key: int) -> tuple[int, int, int]:
    """A stable BGR colour for a track id or class id."""
    b, g, r = _PALETTE[int(key) % len(_PALETTE)]
    return int(b), int(g), int(r)


def _keys(detections: Detections) -> np.ndarray:
    return detections.tracker_id if detections.tracker_id is not None else detections.class_id


@dataclass
class BoxAnnotator:
    """Draw box outlines, coloured by track id (or class id before tracking).

    Example:
        >>> frame = BoxAnnotator(thickness=2).annotate(frame, detections)  # doctest: +SKIP
    """

    thickness: int = 2

    def __post_init__(self) -> None:
        if self.thickness < 1:
            raise ValueError(f"thickness must be >= 1 pixel, got {self.thickness}")

    def annotate(self, scene: np.ndarray, detections: Detections) -> np.ndarray:
        """Draw on ``scene`` in place and return it."""
        for box, key in zip(detections.xyxy.astype(int), _keys(detections), strict=True):
            cv2.rectangle(scene, (box[0], box[1]), (box[2], box[3]), color_for(key), self.thickness)
        return scene


@dataclass
class LabelAnnotator:
    """Draw a filled label above each box: ``#track class confidence`` (parts that exist).

    Args:
        class_names: names by class id; the id is shown when omitted.
        text_scale: OpenCV font scale.

    Example:
        >>> frame = LabelAnnotator(class_names=["circle"]).annotate(frame, tracked)  # doctest: +SKIP
    """

    class_names: Sequence[str] | None = None
    text_scale: float = 0.4
    text_thickness: int = 1

    def __post_init__(self) -> None:
        if self.text_scale <= 0:
            raise ValueError(f"text_scale must be > 0, got {self.text_scale}")

    def labels(self, detections: Detections) -> list[str]:
        """The label text of each detection."""
        names = detections.class_name
        out = []
        for i in range(len(detections)):
            parts = []
            if detections.tracker_id is not None:
                parts.append(f"#{int(detections.tracker_id[i])}")
            cls = int(detections.class_id[i])
            if names is not None:
                parts.append(str(names[i]))
            elif self.class_names is not None and cls < len(self.class_names):
                parts.append(self.class_names[cls])
            else:
                parts.append(str(cls))
            if detections.confidence is not None:
                parts.append(f"{float(detections.confidence[i]):.2f}")
            out.append(" ".join(parts))
        return out

    def annotate(self, scene: np.ndarray, detections: Detections) -> np.ndarray:
        """Draw on ``scene`` in place and return it."""
        font = cv2.FONT_HERSHEY_SIMPLEX
        for text, box, key in zip(
            self.labels(detections), detections.xyxy.astype(int), _keys(detections), strict=True
        ):
            (w, h), baseline = cv2.getTextSize(text, font, self.text_scale, self.text_thickness)
            x, y = int(box[0]), max(int(box[1]), h + baseline)
            cv2.rectangle(scene, (x, y - h - baseline), (x + w, y), color_for(key), -1)
            cv2.putText(
                scene,
                text,
                (x, y - baseline),
                font,
                self.text_scale,
                (255, 255, 255),
                self.text_thickness,
                cv2.LINE_AA,
            )
        return scene


@dataclass
class TraceAnnotator:
    """Draw each track's recent path (box bottom-centre points); keeps its own per-track history.

    Args:
        trace_length: points remembered per track.
        thickness: line thickness in pixels.

    Example:
        >>> tracer = TraceAnnotator(trace_length=30)
        >>> frame = tracer.annotate(frame, tracked)  # doctest: +SKIP
    """

    trace_length: int = 30
    thickness: int = 2
    _history: dict[int, deque] = field(default_factory=lambda: defaultdict(deque), init=False, repr=False)

    def __post_init__(self) -> None:
        if self.trace_length < 2:
            raise ValueError(f"trace_length must be >= 2 points, got {self.trace_length}")

    def reset(self) -> None:
        """Forget all traces (e.g. when the tracker is reset)."""
        self._history.clear()

    def annotate(self, scene: np.ndarray, detections: Detections) -> np.ndarray:
        """Record this frame's points and draw every visible track's trace; needs ``tracker_id``."""
        if detections.tracker_id is None:
            raise ValueError(
                "TraceAnnotator needs tracked detections (tracker_id is None): run a tracker first"
            )
        points = np.stack(
            [(detections.xyxy[:, 0] + detections.xyxy[:, 2]) / 2, detections.xyxy[:, 3]], axis=1
        ).astype(int)
        for track_id, point in zip(detections.tracker_id.tolist(), points, strict=True):
            history = self._history[track_id]
            history.append((int(point[0]), int(point[1])))
            while len(history) > self.trace_length:
                history.popleft()
            if len(history) > 1:
                polyline = np.array(history, dtype=np.int32).reshape(-1, 1, 2)
                cv2.polylines(scene, [polyline], False, color_for(track_id), self.thickness)
        return scene
