"""The CPU-heavy part of a video processing job: decode → sample → detect (batched) → track → rows.

:func:`analyse_video` is synchronous and runs on a worker thread (see :mod:`nexus.service.jobs`); it
never touches the database. A job reads its progress counters from a :class:`JobProgress` the thread
updates, and stops early when its cancel event is set. Model checks and loading (:func:`check_model`,
:class:`DetectorCache`) and the per-frame detect + track step are shared with live streams.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus.detections import Detections
from nexus.errors import ModelLoadError, NexusError
from nexus.inference.detector import MODEL_SUFFIXES, Detector
from nexus.service.schemas.processing import DetectionSettings, ProcessRequest, tracker_config
from nexus.service.settings import ServiceSettings
from nexus.serving.model_source import ModelSource
from nexus.tracking import ByteTrackTracker, OCSORTTracker, SORTTracker, Tracker
from nexus.video import (
    FrameSampling,
    VideoError,
    VideoFileSource,
    VideoInfo,
    VideoTruncatedError,
    probe_video,
)
from nexus.vision.postprocess import PostprocessOptions

REGISTRY_URI = re.compile(
    r"^(models:/[A-Za-z0-9][\w.\-]*(@[\w.\-]+|/\d+)|runs:/[0-9a-f]{8,64}/\S+|s3://[a-z0-9][a-z0-9.\-]{1,62}/\S+)$"
)
TRACKERS: dict[str, Any] = {"bytetrack": ByteTrackTracker, "sort": SORTTracker, "ocsort": OCSORTTracker}


class JobFailed(Exception):
    """The job cannot finish for a reason the user should read (stored in the video's ``message``)."""


class JobCancelled(Exception):
    """The service is shutting down; the job is put back in the queue."""


def check_model(settings: ServiceSettings, requested: str | None) -> str:
    """The model URI a request will use: its own or the configured default.

    A request may name a registry URI (``models:/``, ``runs:/``, ``s3://``) or a model file inside one
    of ``local_model_dirs``; a server path elsewhere is refused (it would let callers load any file).

    Raises:
        NexusError: no model given and none configured, an unsupported scheme, a path outside the model
            folders, or a local file that does not exist.
    """
    if requested is None:
        if not settings.detector_model:
            raise NexusError("no model: pass one or set NEXUS_API_DETECTOR_MODEL")
        return settings.detector_model
    try:
        source = ModelSource.parse(requested)
    except ValueError as error:  # urlparse: e.g. an unclosed IPv6 bracket
        raise NexusError(f"model {requested!r} is not a valid path or URI: {error}") from error
    if source.kind != "local":
        if not REGISTRY_URI.match(requested):
            raise NexusError(
                f"model {requested!r}: use models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN/PATH "
                "or s3://BUCKET/KEY"
            )
        return requested
    path = Path(source.uri).resolve()
    roots = [Path(root).resolve() for root in settings.local_model_dirs or []]
    if not any(path == root or root in path.parents for root in roots):
        raise NexusError(f"model {requested!r} is not inside the service's model folders (local_model_dirs)")
    try:
        usable = path.is_dir() or (path.suffix.lower() in MODEL_SUFFIXES and path.is_file())
    except OSError:  # e.g. a name too long for the file system
        usable = False
    if not usable:
        raise NexusError(f"no model file at {requested!r} (expected one of {', '.join(MODEL_SUFFIXES)})")
    return str(path)


class DetectorCache:
    """Loaded detectors, shared by jobs and streams (ONNX Runtime sessions are thread-safe)."""

    def __init__(self, settings: ServiceSettings, size: int = 4) -> None:
        self.settings = settings
        self.size = size
        self._loaded: OrderedDict[tuple[str, float], Detector] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, uri: str) -> Detector:
        """Resolve ``uri`` (fetching registry models into the cache folder) and load it once.

        Raises:
            JobFailed: the model cannot be fetched or loaded.
        """
        device = self.settings.detector_device
        try:
            path = ModelSource.parse(uri).resolve(self.settings.home / "model-cache", device=device)
            key = (str(path), path.stat().st_mtime)
            with self._lock:
                if key in self._loaded:
                    self._loaded.move_to_end(key)
                    return self._loaded[key]
                detector = Detector.from_path(path, device=device)
                self._loaded[key] = detector
                while len(self._loaded) > self.size:
                    self._loaded.popitem(last=False)
                return detector
        except (ModelLoadError, NexusError, OSError) as error:
            raise JobFailed(f"model {uri} cannot be loaded: {error}") from error


def make_tracker(options: DetectionSettings, fps: float | None) -> Tracker:
    """A fresh tracker for one job or stream (ByteTrack's lost buffer scales with ``fps``)."""
    return TRACKERS[options.tracker](tracker_config(options.tracker, options.tracker_options, fps))


def detection_rows(
    detections: Detections, tracked: Detections, frame: int, timestamp: float, names: dict[int, str]
) -> list[dict[str, Any]]:
    """One row per detection of a frame; boxes the tracker kept carry their ``track_id``."""
    track_of: dict[int, int] = {}
    if tracked.tracker_id is not None and "row" in tracked.data:
        track_of = {int(r): int(t) for r, t in zip(tracked.data["row"], tracked.tracker_id, strict=True)}
    scores = detections.confidence if detections.confidence is not None else [1.0] * len(detections)
    rows = []
    for i, (box, score, class_id) in enumerate(
        zip(detections.xyxy, scores, detections.class_id, strict=True)
    ):
        x1, y1, x2, y2 = (round(float(v), 2) for v in box)
        rows.append(
            {
                "frame": frame,
                "timestamp_s": round(timestamp, 6),
                "class_id": int(class_id),
                "class_name": names.get(int(class_id), str(int(class_id)))[:64],
                "confidence": round(float(score), 6),
                "x1": x1,
                "y1": y1,
                "x2": max(x1, x2),
                "y2": max(y1, y2),
                "track_id": track_of.get(i),
            }
        )
    return rows


def detect_and_track(
    detector: Detector,
    tracker: Tracker,
    images: list[Any],
    options: DetectionSettings,
) -> list[tuple[Detections, Detections]]:
    """Detect on a batch of BGR images, then update the tracker frame by frame (in order)."""
    post = PostprocessOptions(
        conf_threshold=options.conf, iou_threshold=options.iou, max_detections=options.max_det
    )
    out = []
    for detections in detector.predict_arrays(images, post, imgsz=options.imgsz):
        detections.data["row"] = list(range(len(detections)))
        out.append((detections, tracker.update(detections)))
    return out


@dataclass
class JobProgress:
    """Counters the job thread updates and the event loop reads (plain ints: no lock needed)."""

    info: VideoInfo | None = None
    frames_read: int = 0
    frames_processed: int = 0
    detections: int = 0
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        total = self.info.frame_count if self.info else None
        percent = min(100.0, round(100 * self.frames_read / total, 1)) if total else 0.0
        return {
            "frames_read": self.frames_read,
            "frames_total": total,
            "frames_processed": self.frames_processed,
            "detections": self.detections,
            "percent": percent,
        }


@dataclass(frozen=True)
class JobResult:
    """What a finished job stores: the video's metadata and its detection rows."""

    info: VideoInfo
    rows: list[dict[str, Any]]
    frames_processed: int
    tracks: int


def analyse_video(
    path: Path,
    load_detector: Callable[[], Detector],
    options: ProcessRequest,
    progress: JobProgress,
    cancel: threading.Event,
) -> JobResult:
    """Decode ``path`` with the job's sampling, detect in batches, track, and collect detection rows.

    The file is probed before ``load_detector`` runs, so a file that is no video fails without the
    model being fetched or loaded.

    Raises:
        JobFailed: not a video, no frames, or truncated/damaged (the file holds fewer frames than its
            header promises, or a frame cannot be decoded).
        JobCancelled: ``cancel`` was set.
    """
    try:
        info = probe_video(path)
    except VideoError as error:
        detail = _plain(error)
        if detail.startswith("not a readable video"):
            raise JobFailed(detail.replace("not a readable video", "not a decodable video", 1)) from error
        raise JobFailed(f"not a decodable video: {detail}") from error
    if info.frame_count == 0 or info.width == 0:
        raise JobFailed("not a decodable video: it holds no video frames")
    progress.info = info
    detector = load_detector()
    sampling = FrameSampling(every=options.every, fps=options.fps)
    tracker = make_tracker(options, info.fps or None)
    rows: list[dict[str, Any]] = []
    batch: list[Any] = []

    def flush() -> None:
        for frame, (detections, tracked) in zip(
            batch, detect_and_track(detector, tracker, [f.image for f in batch], options), strict=True
        ):
            rows.extend(detection_rows(detections, tracked, frame.index, frame.time, detector.names))
            progress.frames_processed += 1
            progress.detections += len(detections)
        batch.clear()

    try:
        for frame in VideoFileSource(path, sampling, strict=True):
            if cancel.is_set():
                raise JobCancelled
            batch.append(frame)
            progress.frames_read = frame.index + 1
            if len(batch) >= options.batch_size:
                flush()
        flush()
    except VideoTruncatedError as error:
        raise JobFailed(f"truncated video: {_plain(error).removeprefix('truncated: ')}") from error
    except VideoError as error:
        raise JobFailed(f"damaged video: {_plain(error)}") from error
    if progress.frames_processed == 0:
        raise JobFailed("not a decodable video: no frame could be decoded")
    progress.frames_read = max(progress.frames_read, info.frame_count)
    tracks = len({r["track_id"] for r in rows if r["track_id"] is not None})
    return JobResult(info=info, rows=rows, frames_processed=progress.frames_processed, tracks=tracks)


def _plain(error: NexusError) -> str:
    """The message without the (temporary, meaningless to the caller) file path in front."""
    text = str(error)
    return text.removeprefix(f"{error.path}: ") if error.path else text
