"""``nexus eval coco``: summary lines, ``--json``, and one-line errors with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nexus.cli.main import main
from nexus.evaluation import COCO_STAT_LABELS, COCO_STAT_NAMES

GT = {
    "images": [{"id": 1, "height": 100, "width": 100}, {"id": 2, "height": 100, "width": 100}],
    "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    "annotations": [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [10, 10, 20, 20],
            "area": 400,
            "iscrowd": 0,
            "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]],
        },
        {
            "id": 2,
            "image_id": 2,
            "category_id": 2,
            "bbox": [20, 20, 50, 40],
            "area": 2000,
            "iscrowd": 0,
            "segmentation": [[20, 20, 70, 20, 70, 60, 20, 60]],
        },
    ],
}
DT = [
    {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
    {"image_id": 2, "category_id": 1, "bbox": [20, 20, 50, 40], "score": 0.6},
    {"image_id": 2, "category_id": 2, "bbox": [22, 20, 50, 40], "score": 0.5},
]


def _files(tmp_path: Path, gt: Any = GT, dt: Any = DT) -> tuple[str, str]:
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(gt if isinstance(gt, str) else json.dumps(gt))
    dt_path.write_text(dt if isinstance(dt, str) else json.dumps(dt))
    return str(gt_path), str(dt_path)


def test_summary_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, dt = _files(tmp_path)
    assert main(["eval", "coco", "--gt", gt, "--dt", dt]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 12
    assert lines[0].startswith(f" {COCO_STAT_LABELS['AP']} = ")
    assert (
        lines[0] == " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.950"
    )  # cat 1.0, dog 0.9 (IoU 0.92)
    assert lines[6] == " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.950"


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], iou_type: str) -> None:
    gt, dt = _files(tmp_path)
    assert main(["eval", "coco", "--gt", gt, "--dt", dt, "--iou-type", iou_type, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [key for key in document if key in COCO_STAT_NAMES] == list(COCO_STAT_NAMES)
    assert document["iou_type"] == iou_type
    assert document["AP50"] == pytest.approx(1.0)
    assert document["per_class"]["1"]["name"] == "cat"
    assert set(document["per_class"]["2"]) == {"name", "AP", "AP50", "AP75"}


@pytest.mark.parametrize(
    ("gt", "dt", "expected"),
    [
        (None, DT, "gt.json: file not found"),
        ("{oops", DT, "gt.json: not valid JSON"),
        ({"images": [], "annotations": []}, DT, 'gt.json: no "categories" list'),
        (GT, "[1, 2", "dt.json: not valid JSON"),
        (GT, GT, "dt.json: looks like a COCO dataset"),
        (
            GT,
            [{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}],
            "dt.json: 1 result(s) refer",
        ),
        (GT, [{"image_id": 1, "category_id": 1, "bbox": [0, 0], "score": 1}], "dt.json: results[0]"),
    ],
)
def test_bad_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gt: Any, dt: Any, expected: str
) -> None:
    gt_path, dt_path = _files(tmp_path, "" if gt is None else gt, dt)
    if gt is None:
        Path(gt_path).unlink()
    assert main(["eval", "coco", "--gt", gt_path, "--dt", dt_path]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and expected in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err


def test_bad_iou_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, dt = _files(tmp_path)
    assert main(["eval", "coco", "--gt", gt, "--dt", dt, "--iou-type", "keypoints"]) == 2
    assert capsys.readouterr().err == "error: iou_type must be one of bbox, segm, got 'keypoints'\n"
