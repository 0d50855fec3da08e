"""``detections_to_records``: the JSON shape of CLI output and serving responses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nexus.detections import Detections
from nexus.inference.records import detections_to_records
from nexus.vision.masks import encode_rle


def reference_records(detections: Detections, decimals: int = 2) -> list[dict]:
    """Element by element with Python's ``round``: what the vectorized version must reproduce."""
    names = detections.class_name
    records = []
    for i in range(len(detections)):
        record = {
            "xyxy": [round(float(v), decimals) for v in detections.xyxy[i]],
            "confidence": None
            if detections.confidence is None
            else round(float(detections.confidence[i]), 5),
            "class_id": int(detections.class_id[i]),
            "class_name": names[i] if names else str(int(detections.class_id[i])),
        }
        if detections.mask is not None:
            record["mask"] = encode_rle(detections.mask[i])
        if detections.tracker_id is not None:
            record["tracker_id"] = int(detections.tracker_id[i])
        records.append(record)
    return records


def make(count: int, names=False, confidence=True, tracked=False, masks=False, seed=0) -> Detections:
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 1900, (count, 2)).astype(np.float32)
    return Detections(
        xyxy=np.concatenate([corner, corner + rng.uniform(0.001, 80, (count, 2)).astype(np.float32)], axis=1),
        confidence=rng.uniform(0, 1, count).astype(np.float32) if confidence else None,
        class_id=rng.integers(0, 80, count),
        tracker_id=np.arange(count) + 7 if tracked else None,
        mask=rng.integers(0, 2, (count, 12, 16)).astype(bool) if masks else None,
        data={"class_name": np.array([f"class {i % 5}" for i in range(count)])} if names else {},
    )


@pytest.mark.parametrize(
    ("detections", "decimals"),
    [
        (make(0), 2),
        (make(1), 2),
        (make(300, names=True, seed=1), 2),
        (make(40, confidence=False, seed=2), 2),
        (make(25, tracked=True, seed=3), 0),
        (make(6, masks=True, names=True, seed=4), 3),
    ],
    ids=["empty", "one", "300 named", "no confidence", "tracked, 0 decimals", "masks"],
)
def test_records_match_element_by_element_rounding(detections, decimals):
    records = detections_to_records(detections, decimals=decimals)
    assert records == reference_records(detections, decimals)
    assert json.loads(json.dumps(records)) == records  # plain JSON types only
    if records:
        assert type(records[0]["xyxy"][0]) is float and type(records[0]["class_id"]) is int
