"""Bad COCO input ends in one ``CocoInputError`` line naming the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nexus.errors import NexusError
from nexus.evaluation import CocoInputError, evaluate_coco


def _gt() -> dict[str, Any]:
    return {
        "images": [{"id": 1, "height": 50, "width": 50}, {"id": 2, "height": 50, "width": 50}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [5, 5, 20, 20], "area": 400, "iscrowd": 0},
        ],
    }


def _dt() -> list[dict[str, Any]]:
    return [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
        {"image_id": 2, "category_id": 2, "bbox": [5, 5, 20, 21], "score": 0.8},
    ]


def _write(path: Path, value: Any) -> Path:
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def test_files_and_dicts_give_the_same_result(tmp_path: Path) -> None:
    from_files = evaluate_coco(_write(tmp_path / "gt.json", _gt()), str(_write(tmp_path / "dt.json", _dt())))
    from_dicts = evaluate_coco(_gt(), _dt())
    assert from_files.stats == from_dicts.stats
    assert from_dicts.stats["AP50"] == pytest.approx(1.0)
    assert from_dicts.category_names == {1: "cat", 2: "cat_2"}
    assert json.loads(json.dumps(from_dicts.to_dict()))["per_class"]["1"]["name"] == "cat"


def _message(excinfo: pytest.ExceptionInfo[CocoInputError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and isinstance(excinfo.value, NexusError)
    return message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "file not found"),
        ("{not json", "not valid JSON (Expecting property name"),
        ("", "not valid JSON"),
        ([1, 2], "expected a COCO ground-truth object, got a JSON list"),
        ({"annotations": [], "categories": []}, 'no "images" list'),
        ({"images": [], "categories": []}, 'no "annotations" list'),
        ({"images": [], "annotations": []}, 'no "categories" list'),
        ({"images": {}, "annotations": [], "categories": []}, '"images" must be a list'),
        ({"images": [{"file_name": "a.jpg"}], "annotations": [], "categories": []}, 'images[0] has no "id"'),
        (
            {**_gt(), "annotations": [{"id": 1, "image_id": 1, "category_id": 1}]},
            'annotations[0] has no "bbox"',
        ),
        ({**_gt(), "annotations": ["x"]}, "annotations[0] must be an object"),
        (
            {**_gt(), "annotations": [{**_gt()["annotations"][0], "id": [1]}]},
            "annotation ids must be integers",
        ),
        ({**_gt(), "categories": [{"id": "one"}]}, "category id must be an integer, got 'one'"),
    ],
)
def test_bad_ground_truth_file(tmp_path: Path, content: Any, expected: str) -> None:
    gt = tmp_path / "gt.json"
    if content is not None:
        _write(gt, content)
    with pytest.raises(CocoInputError) as excinfo:
        evaluate_coco(gt, _dt())
    assert _message(excinfo).startswith(f"{gt}: ")
    assert expected in _message(excinfo)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(CocoInputError, match="is a directory"):
        evaluate_coco(tmp_path, _dt())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda dt: {"annotations": dt}, "looks like a COCO dataset"),
        (lambda dt: {"results": dt}, "expected a JSON array of COCO results, got a JSON dict"),
        (
            lambda dt: [*dt, {"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}],
            "image ids not in",
        ),
        (lambda dt: [*dt, {"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 1}], "'bbox'"),
        (
            lambda dt: [*dt, {"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}],
            'results[2] has no "score"',
        ),
        (lambda dt: [*dt, {"image_id": 1, "category_id": 1, "score": 0.5}], 'results[2] has no "bbox"'),
        (lambda dt: [*dt, "x"], "results[2] must be an object"),
        (lambda dt: [*dt, {"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": "hi"}], "score"),
        (lambda dt: [{**dt[0], "image_id": [1]}], "image_id and category_id must be integers"),
    ],
)
def test_bad_results_file(tmp_path: Path, change: Any, expected: str) -> None:
    dt = _write(tmp_path / "dt.json", change(_dt()))
    with pytest.raises(CocoInputError) as excinfo:
        evaluate_coco(_gt(), dt)
    assert _message(excinfo).startswith(f"{dt}: ")
    assert expected in _message(excinfo)


def test_unknown_iou_type() -> None:
    with pytest.raises(CocoInputError, match="iou_type must be one of bbox, segm, got 'keypoints'"):
        evaluate_coco(_gt(), _dt(), "keypoints")


def test_segm_needs_ground_truth_masks() -> None:
    with pytest.raises(CocoInputError, match='annotations\\[0\\] has no "segmentation"'):
        evaluate_coco(_gt(), _dt(), "segm")


def test_segm_polygons_need_image_sizes() -> None:
    gt = _gt()
    gt["images"] = [{"id": 1}, {"id": 2}]
    for ann in gt["annotations"]:
        x, y, w, h = ann["bbox"]
        ann["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    with pytest.raises(CocoInputError, match="height"):
        evaluate_coco(gt, _dt(), "segm")


def test_in_memory_inputs_are_named_in_messages() -> None:
    with pytest.raises(CocoInputError, match=r'^ground truth: no "images" list'):
        evaluate_coco({"annotations": [], "categories": []}, [])
    with pytest.raises(CocoInputError, match=r"^detections: expected a JSON array"):
        evaluate_coco(_gt(), {"image_id": 1})  # type: ignore[arg-type]


def test_inputs_are_not_modified() -> None:
    gt, dt = _gt(), _dt()
    gt["annotations"][1]["id"] = 1  # duplicate ids are rewritten for hotcoco, on copies
    before = json.dumps([gt, dt])
    evaluate_coco(gt, dt)
    assert json.dumps([gt, dt]) == before


def test_nothing_is_printed(capfd: pytest.CaptureFixture[str]) -> None:
    gt, dt = _gt(), _dt()
    gt["annotations"][1]["id"] = 1  # hotcoco warns on stderr about duplicate ids...
    dt.append(
        {"image_id": 1, "category_id": 42, "bbox": [0, 0, 5, 5], "score": 0.3}
    )  # ...and unknown categories
    result = evaluate_coco(gt, dt)  # category 2 has no name: hotcoco would warn about that too
    assert result.stats["AP"] >= 0
    assert capfd.readouterr() == ("", "")
