"""Plain JSON-ready records of ``Detections`` (the CLI's and the serving responses' shape)."""

from __future__ import annotations

from typing import Any

from nexus.detections import Detections
from nexus.vision.masks import encode_rle


def detections_to_records(detections: Detections, decimals: int = 2) -> list[dict[str, Any]]:
    """One dict per detection: ``xyxy``, ``confidence``, ``class_id``, ``class_name``, and
    ``mask`` as COCO RLE when masks are present, ``tracker_id`` when tracked.

    Example:
        >>> detections_to_records(Detections(xyxy=[[1, 2, 3, 4]], confidence=[0.5], class_id=[0]))
        [{'xyxy': [1.0, 2.0, 3.0, 4.0], 'confidence': 0.5, 'class_id': 0, 'class_name': '0'}]
    """
    names = detections.class_name
    records = []
    for i in range(len(detections)):
        record: dict[str, Any] = {
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
