"""``nexus track`` in tracker-only mode, on a video with given detections, and with a real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nexus.cli.main import main
from nexus.tracking import SyntheticMOTSequence, evaluate_mot, read_mot, write_mot
from nexus.video import VideoSink, probe_video


@pytest.fixture(scope="module")
def scene(tmp_path_factory, easy_sequence: SyntheticMOTSequence) -> dict[str, Path]:
    """The easy sequence as files: gt.txt, det.txt and an H.264 video of its rendered frames."""
    folder = tmp_path_factory.mktemp("scene")
    frames = 40
    gt = write_mot(folder / "gt.txt", easy_sequence.ground_truth[:frames])
    det = write_mot(folder / "det.txt", easy_sequence.detections[:frames])
    with VideoSink(folder / "scene.mp4", fps=10, crf=18) as sink:
        for t in range(frames):
            sink.write(easy_sequence.render(t))
    return {"gt": gt, "det": det, "video": folder / "scene.mp4"}


@pytest.mark.parametrize("tracker", ["sort", "bytetrack", "ocsort"])
def test_tracker_only_mode(scene: dict[str, Path], tmp_path: Path, tracker: str, capsys) -> None:
    out = tmp_path / "tracks.txt"
    assert main(["track", "--detections", str(scene["det"]), "--tracker", tracker, "--out", str(out)]) == 0
    assert "40 frames" in capsys.readouterr().out
    metrics = evaluate_mot(read_mot(scene["gt"]), read_mot(out))
    assert metrics.mota > 0.6 and metrics.idf1 > 0.6


def test_video_with_detections_deepsort_and_annotation(
    scene: dict[str, Path], reid_onnx: Path, tmp_path: Path
) -> None:
    out, video = tmp_path / "tracks.txt", tmp_path / "annotated.mp4"
    args = ["track", str(scene["video"]), "--detections", str(scene["det"]), "--tracker", "deepsort"]
    args += ["--reid", str(reid_onnx), "--reid-size", "32x64", "--out", str(out), "--annotate", str(video)]
    assert main(args) == 0
    metrics = evaluate_mot(read_mot(scene["gt"]), read_mot(out))
    assert metrics.mota > 0.6 and metrics.idf1 > 0.6
    info = probe_video(video)
    assert (info.codec, info.frame_count, info.width, info.height) == ("h264", 40, 320, 240)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tracker", "bytetrack"], "give a VIDEO with --model"),
        (["--detections", "DET", "--tracker", "kcf"], "unknown tracker 'kcf'"),
        (["VIDEO", "--tracker", "bytetrack"], "give --model MODEL"),
        (["VIDEO", "--tracker", "deepsort", "--detections", "DET"], "needs --reid"),
        (["--detections", "missing.txt"], "missing.txt: no such file"),
        (["--detections", "DET", "--tracker", "deepsort", "--reid", "nope.onnx"], "no such re-id model"),
        (["VIDEO", "--detections", "DET", "--conf", "2"], "conf_threshold must be within [0, 1], got 2.0"),
        (["--detections", "DET", "--reid", "DET", "--reid-size", "0x0"], "--reid-size must look like 64x128"),
        (["--detections", "DET", "--reid", "DET", "--reid-size", "-5x10"], "got '-5x10'"),
    ],
)
def test_track_cli_errors(
    scene: dict[str, Path], tmp_path: Path, args: list[str], message: str, capsys
) -> None:
    args = [str(scene["det"]) if a == "DET" else str(scene["video"]) if a == "VIDEO" else a for a in args]
    assert main(["track", *args, "--out", str(tmp_path / "t.txt")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_track_video_with_a_trained_model(detect_onnx: Path, tmp_path: Path) -> None:
    """The fixture detector (circles/rectangles/triangles at 96 px) on a moving-shapes video."""
    import cv2

    video = tmp_path / "shapes.mp4"
    with VideoSink(video, fps=10) as sink:
        for t in range(15):
            image = np.full((96, 96, 3), 255, np.uint8)
            cv2.circle(image, (20 + 2 * t, 30), 12, (0, 0, 200), -1)
            cv2.rectangle(image, (60, 50 - t), (85, 75 - t), (200, 0, 0), -1)
            sink.write(image)
    out = tmp_path / "tracks.txt"
    assert main(["track", str(video), "--model", str(detect_onnx), "--out", str(out), "--imgsz", "96"]) == 0
    tracks = read_mot(out)
    assert len(tracks) <= 15 and all(d.tracker_id is None or (d.tracker_id > 0).all() for d in tracks)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["VIDEO", "--detections", "DET", "--out", "VIDEO"], "--out would overwrite the input video"),
        (["VIDEO", "--detections", "DET", "--annotate", "VIDEO"], "--annotate would overwrite the input"),
        (["VIDEO", "--detections", "DET", "--out", "DET"], "--out would overwrite the detections file"),
        (["--detections", "DET", "--out", "DET"], "--out would overwrite the detections file"),
    ],
)
def test_track_refuses_to_overwrite_its_inputs(
    scene: dict[str, Path], tmp_path: Path, args: list[str], message: str, capsys
) -> None:
    before = {name: scene[name].read_bytes() for name in ("det", "video")}
    args = [str(scene["det"]) if a == "DET" else str(scene["video"]) if a == "VIDEO" else a for a in args]
    assert main(["track", *args]) == 2
    assert message in capsys.readouterr().err
    assert {name: scene[name].read_bytes() for name in ("det", "video")} == before
