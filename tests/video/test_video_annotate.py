"""Annotators draw boxes, labels and traces; VideoSink writes H.264 that reads back."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from nexus.detections import Detections
from nexus.video import BoxAnnotator, LabelAnnotator, TraceAnnotator, VideoFileSource, VideoSink, probe_video
from nexus.video.annotators import color_for
from nexus.video.errors import VideoError


def tracked(offset: int = 0) -> Detections:
    return Detections(
        xyxy=[[10 + offset, 20, 40 + offset, 60], [70, 10, 110, 50]],
        confidence=[0.9, 0.5],
        class_id=[0, 2],
        tracker_id=[7, 3],
    )


def test_box_annotator_draws_in_track_colours() -> None:
    scene = np.zeros((80, 128, 3), np.uint8)
    BoxAnnotator(thickness=1).annotate(scene, tracked())
    assert tuple(scene[20, 25]) == color_for(7) and tuple(scene[10, 90]) == color_for(3)
    assert scene[40, 25].sum() == 0  # outlines only


@pytest.mark.parametrize(
    ("detections", "names", "expected"),
    [
        (tracked(), ["circle", "rect", "tri"], ["#7 circle 0.90", "#3 tri 0.50"]),
        (tracked(), None, ["#7 0 0.90", "#3 2 0.50"]),
        (Detections(xyxy=[[0, 0, 5, 5]], class_id=[1]), ["a", "b"], ["b"]),
    ],
)
def test_label_text(detections: Detections, names: list[str] | None, expected: list[str]) -> None:
    assert LabelAnnotator(class_names=names).labels(detections) == expected


def test_label_annotator_draws_and_trace_follows_tracks() -> None:
    scene = np.zeros((80, 128, 3), np.uint8)
    LabelAnnotator().annotate(scene, tracked())
    assert scene.any()
    tracer = TraceAnnotator(trace_length=3)
    for step in range(5):
        tracer.annotate(np.zeros((80, 128, 3), np.uint8), tracked(step * 5))
    assert len(tracer._history[7]) == 3 and tracer._history[7][-1] == (45, 60)
    tracer.reset()
    assert not tracer._history
    with pytest.raises(ValueError, match="run a tracker first"):
        tracer.annotate(scene, Detections(xyxy=[[0, 0, 5, 5]]))


@pytest.mark.parametrize("size", [(128, 96), (127, 95)])
def test_sink_writes_h264_that_reads_back(tmp_path: Path, size: tuple[int, int]) -> None:
    width, height = size
    path = tmp_path / "annotated.mp4"
    tracer, boxes = TraceAnnotator(), BoxAnnotator()
    with VideoSink(path, fps=10) as sink:
        for step in range(12):
            scene = np.full((height, width, 3), 40, np.uint8)
            detections = tracked(step * 3)
            tracer.annotate(scene, detections)
            boxes.annotate(scene, detections)
            sink.write(scene)
    info = probe_video(path)
    assert (info.codec, info.frame_count, info.fps) == ("h264", 12, 10.0)
    assert (info.width, info.height) == (width + width % 2, height + height % 2)
    last = list(VideoFileSource(path))[-1].image
    assert np.abs(last[20, 50].astype(int) - color_for(7)).max() < 40  # the box survived encoding


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"fps": 0}, "fps must be > 0"), ({"fps": 10, "crf": 60}, "crf must be in 0..51")],
)
def test_sink_validation(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VideoSink(tmp_path / "x.mp4", **kwargs)


def test_sink_rejects_a_frame_of_another_size(tmp_path: Path) -> None:
    with VideoSink(tmp_path / "x.mp4", fps=5) as sink:
        sink.write(np.zeros((32, 32, 3), np.uint8))
        with pytest.raises(ValueError, match="differs from the first frame"):
            sink.write(np.zeros((16, 16, 3), np.uint8))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("out.txt", "cannot create video file (Could not determine output format)"),
        ("out.jpg", "cannot hold an H.264 video"),
    ],
)
def test_sink_refuses_a_path_that_is_no_video_container(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(VideoError, match=re.escape(message)), VideoSink(tmp_path / name, fps=5) as sink:
        sink.write(np.zeros((32, 32, 3), np.uint8))
