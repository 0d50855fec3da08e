"""``nexus eval MODEL --data DIR``: COCO metrics of a model on a dataset split, with plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def eval_model_command(
    model: Annotated[Path, typer.Argument(help="Model file: .onnx, .pt or .engine.")],
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (or its dataset.yaml).")],
    split: Annotated[str, typer.Option("--split", help="Split to evaluate.")] = "val",
    conf: Annotated[float, typer.Option("--conf", help="Confidence threshold.")] = 0.001,
    iou: Annotated[float, typer.Option("--iou", help="NMS IoU threshold.")] = 0.7,
    imgsz: Annotated[
        int | None, typer.Option("--imgsz", help="Input size; the model's own by default.")
    ] = None,
    plots: Annotated[Path | None, typer.Option("--plots", help="Write PR/AP/confusion PNGs here.")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, or a CUDA device index.")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
) -> None:
    """Evaluate MODEL on a dataset split (COCO mAP for boxes, and masks for segmentation models)."""
    from nexus.evaluation.model_eval import evaluate_model

    report = evaluate_model(
        model, data, split=split, conf=conf, iou=iou, imgsz=imgsz, plots_dir=plots, device=device
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    typer.echo(f"{report.model} on {report.dataset} [{report.split}], {report.images} images")
    for kind, evaluation in (("box", report.box), ("mask", report.mask)):
        if evaluation is None:
            continue
        stats = evaluation.coco.stats
        typer.echo(f"  {kind}: mAP50 {stats['AP50']:.4f}  mAP50-95 {stats['AP']:.4f}")
    typer.echo(f"  {'class':<16}{'instances':>10}{'AP50':>8}{'AP50-95':>9}")
    for row in report.box.per_class:
        typer.echo(f"  {row.name:<16}{row.instances:>10}{row.ap50:>8.3f}{row.ap50_95:>9.3f}")
    for path in report.plots:
        typer.echo(f"  plot: {path}")
