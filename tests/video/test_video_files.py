"""Video metadata, sampled decoding, exact seeking, frame export and bad files (PyAV-generated clips)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pytest

from nexus.cli.main import main
from nexus.video import (
    FrameSampling,
    VideoError,
    VideoFileSource,
    VideoTruncatedError,
    frame_to_bgr,
    probe_video,
    save_frames,
)


@pytest.mark.parametrize("count", ["demux", "decode", "header"])
def test_probe_reports_metadata(clip: Path, count: str) -> None:
    info = probe_video(clip, count=count)
    assert (info.width, info.height, info.fps, info.codec) == (128, 96, 10.0, "h264")
    assert info.frame_count == info.declared_frame_count == 30
    assert info.duration == pytest.approx(3.0)
    assert info.rotation == 0 and not info.truncated


@pytest.mark.parametrize(
    ("sampling", "expected"),
    [
        (FrameSampling(), list(range(30))),
        (FrameSampling(every=7), [0, 7, 14, 21, 28]),
        (FrameSampling(fps=2.5), [0, 4, 8, 12, 16, 20, 24, 28]),
        (FrameSampling(keyframes=True), [0, 10, 20]),
        (FrameSampling(start=1.3, end=2.0), [13, 14, 15, 16, 17, 18, 19]),
        (FrameSampling(every=3, start=2.0), [20, 23, 26, 29]),
    ],
)
def test_sampling_picks_the_right_frames(clip: Path, sampling: FrameSampling, expected: list[int]) -> None:
    frames = list(VideoFileSource(clip, sampling))
    assert [f.index for f in frames] == expected
    for frame in frames:  # the picture is the frame that was asked for
        assert frame.image.shape == (96, 128, 3)
        assert abs(float(np.median(frame.image)) - min(frame.index * 8, 255)) <= 3


@pytest.mark.parametrize("time", [0.0, 0.55, 1.0, 1.75, 2.9])
def test_frame_at_seeks_exactly(clip: Path, time: float) -> None:
    frame = VideoFileSource(clip).frame_at(time)
    assert frame.index == int(time * 10 + 1e-9)
    assert abs(float(np.median(frame.image)) - frame.index * 8) <= 3


def test_frame_at_past_the_end_is_an_error(clip: Path) -> None:
    with pytest.raises(VideoError, match=r"clip\.mp4: no frame at 9\.000 s"):
        VideoFileSource(clip).frame_at(9.0)
    with pytest.raises(VideoError, match=r"clip\.mp4: no frame at 1000.*\.000 s \(past the end"):
        VideoFileSource(clip).frame_at(1e300)


@pytest.mark.parametrize("time", [-1.0, math.nan, math.inf])
def test_frame_at_a_time_that_is_not_a_time(clip: Path, time: float) -> None:
    with pytest.raises(ValueError, match=f"time must be a finite number of seconds >= 0, got {time}"):
        VideoFileSource(clip).frame_at(time)


def test_fast_bgr_matches_pyav_bgr24(clip: Path) -> None:
    with av.open(str(clip)) as container:
        frame = next(container.decode(video=0))
        fast = frame_to_bgr(frame).astype(int)
        reference = frame.to_ndarray(format="bgr24").astype(int)
    assert np.abs(fast - reference).max() <= 3


def test_save_frames_names_files_by_index(clip: Path, tmp_path: Path) -> None:
    written = save_frames(VideoFileSource(clip, FrameSampling(every=10)), tmp_path / "out", ext="png")
    assert [p.name for p in written] == ["frame_000000.png", "frame_000010.png", "frame_000020.png"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": 0}, "every must be >= 1"),
        ({"fps": -1.0}, "fps must be > 0"),
        ({"every": 2, "keyframes": True}, "choose one of"),
        ({"start": 2.0, "end": 1.0}, "must be greater than start"),
        ({"start": -1.0}, "start must be >= 0"),
        ({"start": float("nan")}, "start must be >= 0 seconds, got nan"),
        ({"start": float("inf")}, "start must be >= 0 seconds, got inf"),
        ({"fps": float("nan")}, "fps must be > 0"),
        ({"fps": float("inf")}, "fps must be > 0"),
        ({"end": float("nan")}, "end must be a number of seconds, got nan"),
    ],
)
def test_sampling_validation_says_what_to_change(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FrameSampling(**kwargs)


def _bad_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / (f"{kind}.jpg" if kind == "text named .jpg" else f"{kind}.mp4")
    if kind == "text named .jpg":  # FFmpeg's image2 demuxer opens it by its name, finding no frame
        path.write_text("this is not an image\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "folder":
        path.mkdir()
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("empty", "file is empty"),
        ("text", "not a readable video"),
        ("text named .jpg", "not a decodable video"),
        ("missing", "no such file"),
        ("folder", "is a folder"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, kind: str, message: str, capsys) -> None:
    path = _bad_file(tmp_path, kind)
    with pytest.raises(VideoError, match=message) as caught:
        probe_video(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert main(["video", "info", str(path)]) == 2
    assert f"error: {path}: {message}" in capsys.readouterr().err


@pytest.fixture(scope="module")
def truncated(tmp_path_factory, video_factory) -> Path:
    """An MP4 with its index first (faststart) cut to 60%: the header promises 60 frames."""
    path = video_factory(tmp_path_factory.mktemp("trunc") / "full.mp4", frames=60, faststart=True)
    data = path.read_bytes()
    cut = path.with_name("truncated.mp4")
    cut.write_bytes(data[: int(len(data) * 0.6)])
    return cut


def test_truncated_file_is_detected(truncated: Path, capsys) -> None:
    info = probe_video(truncated, count="decode")
    assert info.declared_frame_count == 60
    assert 0 < info.frame_count < 60 and info.truncated
    frames = list(VideoFileSource(truncated))  # lenient: yields what exists
    assert 0 < len(frames) < 60
    with pytest.raises(VideoTruncatedError, match="truncated: the header promises 60 frames"):
        list(VideoFileSource(truncated, strict=True))
    assert main(["video", "info", str(truncated), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["truncated"] is True
    assert main(["video", "frames", str(truncated), "/nonexistent-never/x", "--strict"]) == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--every", "10"], ["frame_000000.jpg", "frame_000010.jpg", "frame_000020.jpg"]),
        (["--keyframes"], ["frame_000000.jpg", "frame_000010.jpg", "frame_000020.jpg"]),
        (["--fps", "1", "--start", "1", "--end", "3"], ["frame_000010.jpg", "frame_000020.jpg"]),
    ],
)
def test_cli_frames(clip: Path, tmp_path: Path, args: list[str], expected: list[str]) -> None:
    out = tmp_path / "frames"
    assert main(["video", "frames", str(clip), str(out), *args]) == 0
    assert sorted(p.name for p in out.iterdir()) == expected


def test_cli_frames_rejects_two_samplings(clip: Path, tmp_path: Path, capsys) -> None:
    assert main(["video", "frames", str(clip), str(tmp_path), "--every", "2", "--keyframes"]) == 2
    assert "choose one of every, fps or keyframes" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ext", "gif"], "--ext must be jpg or png, got 'gif'"),
        (["--ext", ""], "--ext must be jpg or png, got ''"),
        (["--start", "100"], "no frames selected: the video lasts 3.000 s"),
    ],
)
def test_cli_frames_bad_options(clip: Path, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    assert main(["video", "frames", str(clip), str(tmp_path / "frames"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list((tmp_path / "frames").glob("*"))


def test_cli_frames_into_an_existing_file_is_one_line(clip: Path, tmp_path: Path, capsys) -> None:
    taken = tmp_path / "frames.jpg"
    taken.write_bytes(b"kept")
    assert main(["video", "frames", str(clip), str(taken)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {taken}: File exists\n" and taken.read_bytes() == b"kept"
