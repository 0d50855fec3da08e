"""Run a tracker over a video (detector + tracker + optional annotated H.264 output) or a detections file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nexus.detections import Detections
from nexus.errors import NexusError
from nexus.tracking.deepsort import DeepSORTTracker
from nexus.tracking.mot_format import read_mot, write_mot
from nexus.tracking.track_table import Tracker

if TYPE_CHECKING:
    from nexus.inference.detector import Detector


@dataclass(frozen=True)
class TrackingSummary:
    """What a tracking run produced.

    Attributes:
        frames: frames processed.
        detections: detections fed to the tracker.
        tracked: tracked boxes written.
        tracks: distinct track ids.
        out: the MOTChallenge file written.
        annotated: the annotated video, when asked for.
    """

    frames: int
    detections: int
    tracked: int
    tracks: int
    out: Path
    annotated: Path | None = None


def _summary(
    inputs: list[Detections], outputs: list[Detections], out: Path, annotated: Path | None
) -> TrackingSummary:
    ids = {int(i) for d in outputs if d.tracker_id is not None for i in d.tracker_id}
    return TrackingSummary(
        frames=len(outputs),
        detections=sum(len(d) for d in inputs),
        tracked=sum(len(d) for d in outputs),
        tracks=len(ids),
        out=out,
        annotated=annotated,
    )


def _refuse_overwriting(inputs: dict[str, str | Path | None], outputs: dict[str, str | Path | None]) -> None:
    """Refuse an output path that is an input or another output (it would be overwritten)."""
    taken = {Path(path).resolve(): name for name, path in inputs.items() if path is not None}
    for name, path in outputs.items():
        if path is None:
            continue
        if Path(path).resolve() in taken:
            raise NexusError(
                f"{name} would overwrite {taken[Path(path).resolve()]}; choose another path", path=path
            )
        taken[Path(path).resolve()] = name


def track_detections_file(detections_file: str | Path, tracker: Tracker, out: str | Path) -> TrackingSummary:
    """Tracker-only mode: read MOTChallenge detections, track them, write MOTChallenge tracks.

    Example:
        >>> track_detections_file("det.txt", ByteTrackTracker(), "tracks.txt").tracks  # doctest: +SKIP
        17
    """
    if isinstance(tracker, DeepSORTTracker) and tracker.embedder is not None:
        raise NexusError("deepsort with a re-id model needs the video frames: pass VIDEO too")
    _refuse_overwriting({"the detections file": detections_file}, {"--out": out})
    inputs = read_mot(detections_file)
    tracker.reset()
    try:
        outputs = [tracker.update(d) for d in inputs]
    except ValueError as error:
        raise NexusError(f"{detections_file}: {error}") from error
    return _summary(inputs, outputs, write_mot(out, outputs), None)


def track_video(
    video: str | Path,
    tracker: Tracker,
    out: str | Path,
    *,
    detector: Detector | None = None,
    detections_file: str | Path | None = None,
    conf: float = 0.1,
    imgsz: int | None = None,
    annotate: str | Path | None = None,
) -> TrackingSummary:
    """Detect (or read detections) frame by frame, track, write MOT tracks and optionally an annotated video.

    Args:
        video: the input video.
        tracker: a fresh or reusable tracker (it is reset first).
        out: MOTChallenge output file.
        detector: the model to run on every frame; or give ``detections_file``.
        detections_file: MOTChallenge detections of this video (frame 1 is the first frame).
        conf: detector confidence threshold (low by default: ByteTrack uses low-score boxes).
        imgsz: detector input size; the model's own when omitted.
        annotate: write an H.264 video with boxes, labels and traces here.

    Example:
        >>> detector = Detector.from_path("model.onnx")  # doctest: +SKIP
        >>> track_video("clip.mp4", ByteTrackTracker(), "tracks.txt", detector=detector)  # doctest: +SKIP
    """
    from nexus.video.annotators import BoxAnnotator, LabelAnnotator, TraceAnnotator
    from nexus.video.reader import VideoFileSource
    from nexus.video.sink import VideoSink
    from nexus.vision.postprocess import PostprocessOptions

    if (detector is None) == (detections_file is None):
        raise NexusError(
            "give either a model (--model) or a detections file (--detections), not both or neither"
        )
    _refuse_overwriting(
        {"the input video": video, "the detections file": detections_file},
        {"--out": out, "--annotate": annotate},
    )
    try:
        options = PostprocessOptions(conf_threshold=conf)
    except ValueError as error:
        raise NexusError(str(error)) from error
    source = VideoFileSource(video)
    given = read_mot(detections_file) if detections_file is not None else None
    tracker.reset()
    sink = VideoSink(annotate, fps=source.info.fps or 30.0) if annotate is not None else None
    boxes, labels, traces = BoxAnnotator(), LabelAnnotator(), TraceAnnotator()
    inputs: list[Detections] = []
    outputs: list[Detections] = []
    try:
        for position, frame in enumerate(source):
            if given is not None:
                detections = given[position] if position < len(given) else Detections.empty()
            else:
                assert detector is not None
                detections = detector.predict_arrays([frame.image], options, imgsz=imgsz)[0]
            if isinstance(tracker, DeepSORTTracker):
                tracked = tracker.update(detections, frame.image)
            else:
                tracked = tracker.update(detections)
            inputs.append(detections)
            outputs.append(tracked)
            if sink is not None:
                scene = frame.image.copy()
                traces.annotate(scene, tracked)
                boxes.annotate(scene, tracked)
                labels.annotate(scene, tracked)
                sink.write(scene)
    finally:
        if sink is not None:
            sink.close()
    return _summary(
        inputs, outputs, write_mot(out, outputs), Path(annotate) if annotate is not None else None
    )
