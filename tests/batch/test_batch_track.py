"""``nexus batch track`` on real Spark ``local[2]``: the same rows as a service processing job, per video."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest
from deltalake import DeltaTable

from nexus.batch.predict import BatchError
from nexus.batch.video import BatchTrackConfig, run_batch_track
from nexus.cli.main import main
from nexus.inference.detector import Detector
from nexus.service.processing import JobProgress, analyse_video

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from media_clips import WEAK_MODEL, write_clip  # thresholds the test detector reaches on the clips


@pytest.fixture
def clips(tmp_path) -> Path:
    folder = tmp_path / "clips"
    (folder / "day2").mkdir(parents=True)
    write_clip(folder / "cam1.mp4", frames=24)
    write_clip(folder / "day2" / "cam2.mp4", frames=16, size=(160, 96))
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(300))
    (folder / "notes.txt").write_text("not a video")
    return folder


def weak_config(**kwargs) -> BatchTrackConfig:
    options = {k: v for k, v in WEAK_MODEL.items() if k != "tracker"}
    return BatchTrackConfig(tracker="bytetrack", **options, **kwargs)


def test_rows_equal_a_processing_job_per_video(spark, detect_onnx, clips, tmp_path):
    table = tmp_path / "tracks"
    config = weak_config(videos=clips, model=detect_onnx, table=table, batch_size=4)
    result = run_batch_track(config, spark)

    assert (result.videos, result.failed_videos, result.table_version) == (3, 1, 0)
    frame = DeltaTable(str(table)).to_pandas()
    by_video = {path: group for path, group in frame.groupby("video_path")}
    assert set(by_video) == {str(p.resolve()) for p in clips.rglob("*.mp4")}
    (broken,) = by_video[str((clips / "broken.mp4").resolve())].to_dict("records")
    assert "not a decodable video" in broken["error"]

    detector = Detector.from_path(detect_onnx)
    total = 0
    for clip in ("cam1.mp4", "day2/cam2.mp4"):
        path = (clips / clip).resolve()
        expected = analyse_video(
            path, lambda: detector, config.process_request(), JobProgress(), threading.Event()
        )
        got = by_video[str(path)].sort_values(["frame", "x1", "y1"]).to_dict("records")
        want = sorted(expected.rows, key=lambda r: (r["frame"], r["x1"], r["y1"]))
        assert len(got) == len(want) > 0
        for row, reference in zip(got, want, strict=True):
            assert (row["frame"], row["class_id"]) == (reference["frame"], reference["class_id"])
            assert abs(row["x1"] - reference["x1"]) < 0.02 and abs(row["y2"] - reference["y2"]) < 0.02
            assert abs(row["timestamp_s"] - reference["timestamp_s"]) < 1e-6
            assert (row["track_id"] is None or row["track_id"] != row["track_id"]) == (
                reference["track_id"] is None
            )
        total += len(got)
    assert result.detections == total and result.tracks > 0


def test_cli_and_bad_input(spark, detect_onnx, clips, tmp_path, capsys):
    table = tmp_path / "cli-tracks"
    argv = ["batch", "track", str(clips), "--model", str(detect_onnx), "--table", str(table), "--json"]
    assert main([*argv, "--conf", "0.001", "--every", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["videos"] == 3 and result["table_version"] == 0
    assert DeltaTable(str(table)).to_pandas().frame.dropna().mod(4).eq(0).all()  # every 4th frame only

    assert main([*argv, "--tracker", "kalman"]) == 2
    assert "tracker" in capsys.readouterr().err
    assert main([*argv, "--master", "sparkk://host:7077"]) == 2
    assert "master='sparkk://host:7077' is not a Spark master" in capsys.readouterr().err
    assert (
        main(["batch", "track", str(tmp_path / "none"), "--model", str(detect_onnx), "--table", str(table)])
        == 2
    )
    assert "no such folder of videos" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BatchError, match="no videos"):
        run_batch_track(BatchTrackConfig(videos=empty, model=detect_onnx, table=tmp_path / "t"), spark)
