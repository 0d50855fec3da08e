"""Reading and checking COCO ground truth and results before they reach the evaluator.

Everything that can be wrong with a user's files is found here and reported as one line naming the
file (``CocoInputError``); what passes is handed to hotcoco in the form pycocotools would see it, so
the numbers come out the same (see ``prepare_coco_inputs`` for the few pycocotools quirks reproduced).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus.errors import NexusError

IOU_TYPES: tuple[str, ...] = ("bbox", "segm")
GT_SECTIONS: tuple[str, ...] = ("images", "annotations", "categories")

GroundTruthSource = Mapping[str, Any] | str | Path
DetectionsSource = Sequence[Mapping[str, Any]] | str | Path


class CocoInputError(NexusError):
    """COCO ground truth or results are missing, not JSON, or not in the COCO form.

    Example:
        >>> str(CocoInputError("not valid JSON", path="gt.json"))
        'gt.json: not valid JSON'
    """


@dataclass
class CocoInputs:
    """Ground truth and results, checked and ready for hotcoco.

    Attributes:
        ground_truth: a COCO dataset dict with ``images``, ``annotations`` and ``categories`` only.
        detections: COCO results whose image ids are all in the ground truth and whose category ids
            are all ground-truth categories (pycocotools ignores the others; so do we).
        gt_label: the ground-truth file's path, or ``"ground truth"`` for an in-memory dict.
        dt_label: the results file's path, or ``"detections"`` for an in-memory list.
        category_names: category id -> name, in ground-truth order.
    """

    ground_truth: dict[str, Any]
    detections: list[dict[str, Any]]
    gt_label: str
    dt_label: str
    category_names: dict[int, str]


def check_iou_type(iou_type: str) -> str:
    """Return ``iou_type`` if it is ``"bbox"`` or ``"segm"``; raise ``CocoInputError`` otherwise.

    Example:
        >>> check_iou_type("segm")
        'segm'
    """
    if iou_type not in IOU_TYPES:
        raise CocoInputError(f"iou_type must be one of {', '.join(IOU_TYPES)}, got {iou_type!r}")
    return iou_type


def read_json(path: str | Path) -> Any:
    """Parse a JSON file, turning every way it can fail into a one-line ``CocoInputError``.

    Example:
        >>> read_json("/no/such/file.json")
        Traceback (most recent call last):
        ...
        nexus.evaluation.coco_inputs.CocoInputError: /no/such/file.json: file not found
    """
    file = Path(path)
    if not file.exists():
        raise CocoInputError("file not found", path=file)
    if file.is_dir():
        raise CocoInputError("is a directory, expected a JSON file", path=file)
    try:
        with file.open("rb") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise CocoInputError(
            f"not valid JSON ({error.msg} at line {error.lineno} column {error.colno})", path=file
        ) from None
    except UnicodeDecodeError:
        raise CocoInputError("not valid JSON (not UTF-8 text)", path=file) from None
    except OSError as error:
        raise CocoInputError(f"cannot read ({error.strerror or error})", path=file) from None


def _label_and_value(source: Any, default_label: str) -> tuple[str, Any]:
    if isinstance(source, (str, Path)):
        return str(source), read_json(source)
    return default_label, source


def _ground_truth(data: Any, label: str, iou_type: str) -> tuple[dict[str, Any], dict[int, str]]:
    if not isinstance(data, Mapping):
        raise CocoInputError(
            f"expected a COCO ground-truth object, got a JSON {type(data).__name__}", path=label
        )
    for section in GT_SECTIONS:
        if section not in data:
            raise CocoInputError(f'no "{section}" list (not COCO ground truth)', path=label)
        if not isinstance(data[section], list):
            raise CocoInputError(
                f'"{section}" must be a list, got {type(data[section]).__name__}', path=label
            )
    geometry = "bbox" if iou_type == "bbox" else "segmentation"
    for section, keys in (
        ("images", ("id",)),
        ("categories", ("id",)),
        ("annotations", ("id", "image_id", "category_id", geometry)),
    ):
        _check_entries(data[section], keys, section, label)
    categories = [dict(c) if "name" in c else {**c, "name": f"cat_{c['id']}"} for c in data["categories"]]
    names = {_as_id(c["id"], label, "category"): str(c["name"]) for c in categories}
    try:
        annotations = _as_pycocotools_indexes(data["annotations"])
    except TypeError:
        raise CocoInputError("annotation ids must be integers", path=label) from None
    return {"images": data["images"], "annotations": annotations, "categories": categories}, names


def _check_entries(entries: list[Any], keys: tuple[str, ...], section: str, label: str) -> None:
    """Every entry is an object with ``keys``; one fast pass, a slow one only to name the culprit."""
    required = frozenset(keys)
    if all(type(entry) is dict and required <= entry.keys() for entry in entries):
        return
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise CocoInputError(
                f"{section}[{index}] must be an object, got {type(entry).__name__}", path=label
            )
        missing = [key for key in keys if key not in entry]
        if missing:
            raise CocoInputError(f'{section}[{index}] has no "{missing[0]}"', path=label)


def _as_id(value: Any, label: str, section: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise CocoInputError(f"{section} id must be an integer, got {value!r}", path=label)
    return int(value)


def _as_pycocotools_indexes(annotations: list[Any]) -> list[Any]:
    """Reproduce pycocotools' handling of duplicate annotation ids.

    pycocotools indexes annotations by id (the last one with an id wins) but lists each image's
    annotations by position, then loads them back by id: every occurrence of a duplicated id is
    evaluated as the last annotation with that id. We hand hotcoco exactly that list, with fresh
    unique ids (ids carry no meaning in the metrics).
    """
    ids = [a["id"] for a in annotations]
    if len(set(ids)) == len(ids):
        return annotations
    last = {a["id"]: a for a in annotations}
    return [{**last[a["id"]], "id": index + 1} for index, a in enumerate(annotations)]


def _detections(
    data: Any, label: str, image_ids: set[int], category_ids: set[int], iou_type: str
) -> list[dict[str, Any]]:
    if isinstance(data, Mapping) and isinstance(data.get("annotations"), list):
        raise CocoInputError(
            "looks like a COCO dataset, expected a results list ([{image_id, category_id, bbox, score}])",
            path=label,
        )
    if not isinstance(data, list):
        raise CocoInputError(
            f"expected a JSON array of COCO results, got a JSON {type(data).__name__}", path=label
        )
    if iou_type == "bbox":
        _check_entries(data, ("image_id", "category_id", "score", "bbox"), "results", label)
    else:
        _check_entries(data, ("image_id", "category_id", "score"), "results", label)
        missing = next((i for i, d in enumerate(data) if "segmentation" not in d and "bbox" not in d), None)
        if missing is not None:
            raise CocoInputError(f'results[{missing}] has no "segmentation"', path=label)
    try:
        unknown_images = {d["image_id"] for d in data} - image_ids
        unknown_categories = {d["category_id"] for d in data} - category_ids
    except TypeError:
        raise CocoInputError("image_id and category_id must be integers", path=label) from None
    if unknown_images:
        count = sum(d["image_id"] in unknown_images for d in data)
        raise CocoInputError(
            f"{count} result(s) refer to image ids not in the ground truth "
            f"(e.g. {sorted(unknown_images, key=str)[0]!r}); wrong ground-truth file or split?",
            path=label,
        )
    if unknown_categories:  # pycocotools never evaluates them; hotcoco would warn on stderr
        data = [d for d in data if d["category_id"] not in unknown_categories]
    if iou_type == "segm" and data and "bbox" in data[0] and any("bbox" not in d for d in data):
        # pycocotools decides by the first result; a later one without "bbox" makes it crash.
        raise CocoInputError('some results have "bbox" and some do not; give all or none', path=label)
    if iou_type == "segm" and data and "bbox" not in data[0]:
        # pycocotools' loadRes takes the mask branch for every result when the first has no bbox:
        # areas and boxes then come from the masks, so drop any boxes for hotcoco to do the same.
        data = [{k: v for k, v in d.items() if k != "bbox"} if "bbox" in d else d for d in data]
    return list(data)


def prepare_coco_inputs(
    ground_truth: GroundTruthSource, detections: DetectionsSource, iou_type: str = "bbox"
) -> CocoInputs:
    """Load (when given paths) and check ground truth and results for ``evaluate_coco``.

    Args:
        ground_truth: a COCO dataset dict or the path of its JSON file.
        detections: a list of COCO results or the path of its JSON file.
        iou_type: ``"bbox"`` or ``"segm"``.

    Returns:
        The checked inputs; dicts are shared with the caller's, never modified.

    Raises:
        CocoInputError: a file is missing or not JSON, the ground truth lacks ``images``,
            ``annotations`` or ``categories``, a result lacks a field or refers to an unknown image.

    Example:
        >>> gt = {"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1, "name": "cat"}]}
        >>> prepare_coco_inputs(gt, [], "bbox").category_names
        {1: 'cat'}
    """
    check_iou_type(iou_type)
    gt_label, gt_data = _label_and_value(ground_truth, "ground truth")
    dataset, names = _ground_truth(gt_data, gt_label, iou_type)
    dt_label, dt_data = _label_and_value(detections, "detections")
    image_ids = {_as_id(image["id"], gt_label, "image") for image in dataset["images"]}
    results = _detections(dt_data, dt_label, image_ids, set(names), iou_type)
    return CocoInputs(dataset, results, gt_label, dt_label, names)
