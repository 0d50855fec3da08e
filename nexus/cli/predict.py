"""``nexus predict MODEL IMAGE...``: detections as a table or JSON (Ultralytics' option meanings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def predict_command(
    model: Annotated[Path, typer.Argument(help="Model file: .onnx (ours or Ultralytics'), .pt or .engine.")],
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    conf: Annotated[float, typer.Option("--conf", help="Confidence threshold.")] = 0.25,
    iou: Annotated[float, typer.Option("--iou", help="NMS IoU threshold.")] = 0.7,
    imgsz: Annotated[
        int | None, typer.Option("--imgsz", help="Input size; the model's own by default.")
    ] = None,
    max_det: Annotated[int, typer.Option("--max-det", help="Maximum detections per image.")] = 300,
    classes: Annotated[list[int] | None, typer.Option("--classes", help="Keep only these class ids.")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, or a CUDA device index.")] = "cpu",
    batch: Annotated[int, typer.Option("--batch", help="Images per forward pass.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one object per image).")] = False,
) -> None:
    """Detect (and segment) objects in images."""
    from nexus.inference.detector import Detector
    from nexus.inference.records import detections_to_records

    detector = Detector.from_path(model, device=device)
    results = detector.predict(
        [str(p) for p in images],
        conf=conf,
        iou=iou,
        imgsz=imgsz,
        max_det=max_det,
        classes=classes,
        batch_size=batch,
    )
    payload = [
        {"image": str(path), "detections": detections_to_records(detections)}
        for path, detections in zip(images, results, strict=True)
    ]
    if as_json:
        typer.echo(json.dumps({"model": str(model), "task": detector.task, "results": payload}, indent=2))
        return
    for item in payload:
        typer.echo(f"{item['image']}: {len(item['detections'])} detections")
        for entry in item["detections"]:
            x1, y1, x2, y2 = entry["xyxy"]
            typer.echo(
                f"  {entry['class_name']:<16} {entry['confidence']:.3f}  [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]"  # noqa: E501
            )
