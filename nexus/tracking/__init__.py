"""Multi-object tracking: SORT, ByteTrack, OC-SORT and DeepSORT behind one interface, MOT files, metrics.

Example:
    >>> from nexus.tracking import create_tracker
    >>> tracker = create_tracker("bytetrack")
    >>> tracker.update(Detections(xyxy=[[0, 0, 10, 10]], confidence=[0.9])).tracker_id.tolist()
    [1]
"""

from __future__ import annotations

from nexus.detections import Detections
from nexus.errors import NexusError
from nexus.tracking.bytetrack import ByteTrackConfig, ByteTrackTracker
from nexus.tracking.deepsort import DeepSORTConfig, DeepSORTTracker
from nexus.tracking.metrics import MOTMetrics, evaluate_mot
from nexus.tracking.mot_format import MOTFormatError, read_mot, write_mot
from nexus.tracking.ocsort import OCSORTConfig, OCSORTTracker
from nexus.tracking.per_stream import PerStreamTracker
from nexus.tracking.reid import Embedder, OnnxReIdEmbedder
from nexus.tracking.sort import SORTConfig, SORTTracker
from nexus.tracking.synthetic import SyntheticMOTConfig, SyntheticMOTSequence, generate_mot_sequence
from nexus.tracking.track_table import Tracker

TRACKERS = ("sort", "bytetrack", "ocsort", "deepsort")


def create_tracker(name: str, embedder: Embedder | None = None) -> Tracker:
    """A tracker by name (``sort``, ``bytetrack``, ``ocsort``, ``deepsort``) with default settings.

    Raises:
        NexusError: unknown name.
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key == "sort":
        return SORTTracker()
    if key == "bytetrack":
        return ByteTrackTracker()
    if key == "ocsort":
        return OCSORTTracker()
    if key == "deepsort":
        return DeepSORTTracker(embedder)
    raise NexusError(f"unknown tracker {name!r}: choose one of {', '.join(TRACKERS)}")


__all__ = [
    "TRACKERS",
    "ByteTrackConfig",
    "ByteTrackTracker",
    "DeepSORTConfig",
    "DeepSORTTracker",
    "Detections",
    "Embedder",
    "MOTFormatError",
    "MOTMetrics",
    "OCSORTConfig",
    "OCSORTTracker",
    "OnnxReIdEmbedder",
    "PerStreamTracker",
    "SORTConfig",
    "SORTTracker",
    "SyntheticMOTConfig",
    "SyntheticMOTSequence",
    "Tracker",
    "create_tracker",
    "evaluate_mot",
    "generate_mot_sequence",
    "read_mot",
    "write_mot",
]
