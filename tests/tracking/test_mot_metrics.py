"""MOTChallenge files and metrics on hand-built cases; the synthetic generator; ``nexus eval mot``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nexus.cli.main import main
from nexus.detections import Detections
from nexus.tracking import (
    MOTFormatError,
    SyntheticMOTConfig,
    evaluate_mot,
    generate_mot_sequence,
    read_mot,
    write_mot,
)

A = [0, 0, 20, 20]
B = [50, 50, 70, 70]


def frames(*rows: list[tuple[list[float], int]]) -> list[Detections]:
    """Each argument is one frame: a list of (box, id)."""
    return [
        Detections(
            xyxy=np.array([box for box, _ in frame], np.float32).reshape(-1, 4),
            tracker_id=np.array([i for _, i in frame], np.int64),
            confidence=np.ones(len(frame), np.float32),
        )
        for frame in rows
    ]


GT = frames(*[[(A, 1), (B, 2)]] * 4)


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        # perfect tracks, ids named differently
        (frames(*[[(A, 10), (B, 20)]] * 4), {"mota": 1.0, "idf1": 1.0, "hota": 1.0, "id_switches": 0}),
        # object 1 changes id after two frames: one switch; IDF1 = 2*6/(8+8)
        (
            frames([(A, 10), (B, 20)], [(A, 10), (B, 20)], [(A, 11), (B, 20)], [(A, 11), (B, 20)]),
            {"mota": 7 / 8, "idf1": 12 / 16, "id_switches": 1},
        ),
        # object 2 never found: half missed
        (frames(*[[(A, 10)]] * 4), {"mota": 0.5, "idf1": 8 / 12, "misses": 4, "recall": 0.5}),
        # one false positive per frame
        (frames(*[[(A, 1), (B, 2), ([200, 200, 220, 220], 3)]] * 4), {"mota": 0.5, "false_positives": 4}),
    ],
)
def test_metrics_on_hand_built_cases(pred: list[Detections], expected: dict) -> None:
    metrics = evaluate_mot(GT, pred).to_dict()
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value), key


def test_detections_without_ids_are_refused() -> None:
    with pytest.raises(Exception, match="without track ids"):
        evaluate_mot(GT, [Detections(xyxy=[A])])


def test_mot_round_trip(tmp_path: Path) -> None:
    path = write_mot(tmp_path / "t.txt", [*GT[:2], Detections.empty(), *GT[3:]])
    back = read_mot(path)
    assert len(back) == 4 and len(back[2]) == 0
    np.testing.assert_allclose(back[0].xyxy, GT[0].xyxy)
    assert back[3].tracker_id.tolist() == [1, 2]
    assert path.read_text().splitlines()[0] == "1,1,0.00,0.00,20.00,20.00,1.0000,0,-1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,1,a,b,c,d\n", "line 1: not numbers"),
        ("1,1,2\n", "expected frame,id,x,y,w,h"),
        ("0,1,0,0,5,5,1\n", "frame numbers are whole numbers from 1"),
        ("1.5,1,0,0,5,5,1\n", "frame numbers are whole numbers from 1"),
        ("1e12,1,0,0,5,5,1\n", "to 1,000,000, got 1e\\+12"),
        ("1,1,0,0,nan,5,1\n", "line 1: NaN or infinite value"),
        ("1,1,0,0,5,5,1\n2,1,0,0,5,inf,1\n", "line 2: NaN or infinite value"),
        ("1,1,0,0,-5,5,1\n", "negative box width or height"),
    ],
)
def test_read_mot_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(MOTFormatError, match=message):
        read_mot(path)


def test_detection_files_load_without_ids(tmp_path: Path) -> None:
    path = tmp_path / "det.txt"
    path.write_text("1,-1,10,10,5,5,0.9,-1,-1,-1\n3,-1,12,10,5,5,0.4,-1,-1,-1\n")
    per_frame = read_mot(path)
    assert [len(d) for d in per_frame] == [1, 0, 1] and per_frame[0].tracker_id is None
    assert per_frame[2].confidence.tolist() == pytest.approx([0.4])


def test_generator_is_deterministic_and_has_the_asked_properties() -> None:
    config = SyntheticMOTConfig(frames=60, objects=8, miss_rate=0.2, false_positives=2.0, seed=5)
    a, b = generate_mot_sequence(config), generate_mot_sequence(config)
    assert all(np.array_equal(x.xyxy, y.xyxy) for x, y in zip(a.detections, b.detections, strict=True))
    gt_boxes = sum(len(d) for d in a.ground_truth)
    true_dets = sum(int((d.data["object_id"] > 0).sum()) for d in a.detections)
    false_dets = sum(int((d.data["object_id"] == 0).sum()) for d in a.detections)
    assert 0.7 < true_dets / gt_boxes < 0.9  # about 20% missed
    assert 80 < false_dets < 160  # about 2 per frame
    lifetimes = {int(i) for d in a.ground_truth for i in d.tracker_id}
    assert lifetimes <= set(range(1, 9))
    assert a.render(0).shape == (480, 640, 3)


def test_cli_eval_mot(tmp_path: Path, capsys) -> None:
    gt = write_mot(tmp_path / "gt.txt", GT)
    pred = write_mot(
        tmp_path / "pred.txt",
        frames([(A, 10), (B, 20)], [(A, 10), (B, 20)], [(A, 11), (B, 20)], [(A, 11), (B, 20)]),
    )
    assert main(["eval", "mot", "--gt", str(gt), "--pred", str(pred), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mota"] == pytest.approx(0.875) and result["id_switches"] == 1
    assert main(["eval", "mot", "--gt", str(gt), "--pred", str(gt)]) == 0
    assert "MOTA 1.0000" in capsys.readouterr().out
    assert main(["eval", "mot", "--gt", str(gt), "--pred", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt: no such file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("gt_text", "extra", "message"),
    [
        ("1,1,0,0,5,5,1,1,1\n", ["--iou", "2"], "iou_threshold must be in (0, 1), got 2.0"),
        ("1,1,0,0,5,5,1,1,1\n", ["--iou", "nan"], "iou_threshold must be in (0, 1), got nan"),
        ("", [], "gt.txt: no ground-truth objects"),
        ("1,1,0,0,5,5,0,1,1\n", [], "gt.txt: no ground-truth objects"),
    ],
)
def test_cli_eval_mot_bad_input(tmp_path: Path, capsys, gt_text: str, extra: list[str], message: str) -> None:
    (tmp_path / "gt.txt").write_text(gt_text)
    pred = write_mot(tmp_path / "pred.txt", GT)
    assert main(["eval", "mot", "--gt", str(tmp_path / "gt.txt"), "--pred", str(pred), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
