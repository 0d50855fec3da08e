"""``nexus eval coco --gt GT.json --dt DT.json [--iou-type bbox|segm] [--json]``.

Prints pycocotools' 12 summary lines (or, with ``--json``, one JSON object of the 12 statistics
keyed by name, plus ``iou_type`` and ``per_class``). Bad files end in ``error: <file>: <problem>``
and exit status 2, through ``nexus.cli.main``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

_GT_HELP = "COCO ground-truth JSON (images, annotations, categories)."
_DT_HELP = "COCO results JSON: [{image_id, category_id, bbox and/or segmentation, score}]."
_JSON_HELP = "Print one JSON object (12 statistics by name, iou_type, per_class) instead of the summary."


def eval_coco_command(
    gt: Annotated[Path, typer.Option("--gt", help=_GT_HELP)],
    dt: Annotated[Path, typer.Option("--dt", help=_DT_HELP)],
    iou_type: Annotated[str, typer.Option("--iou-type", help="bbox (boxes) or segm (masks).")] = "bbox",
    as_json: Annotated[bool, typer.Option("--json", help=_JSON_HELP)] = False,
) -> None:
    """COCO metrics of a results file against ground truth (numbers identical to pycocotools).

    Example:
        nexus eval coco --gt instances_val.json --dt results.json --iou-type segm --json
    """
    from nexus.evaluation import evaluate_coco

    result = evaluate_coco(gt, dt, iou_type=iou_type)
    if as_json:
        document = {**result.stats, "iou_type": result.iou_type, "per_class": result.to_dict()["per_class"]}
        typer.echo(json.dumps(document, indent=2))
        return
    for line in result.summary_lines():
        typer.echo(line)
