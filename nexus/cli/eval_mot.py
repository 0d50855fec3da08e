"""``nexus eval mot --gt gt.txt --pred tracks.txt [--json]``: MOTA, IDF1 (motmetrics) and HOTA (TrackEval)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def eval_mot_command(
    gt: Annotated[Path, typer.Option("--gt", help="MOTChallenge ground truth (gt.txt).")],
    pred: Annotated[Path, typer.Option("--pred", help="MOTChallenge tracker output.")],
    iou: Annotated[float, typer.Option("--iou", help="Match IoU for MOTA / IDF1.")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score tracks against ground truth (rows of gt with column 7 = 0 are ignored).

    Example:
        nexus eval mot --gt MOT17-02/gt/gt.txt --pred tracks.txt --json
    """
    from nexus.errors import NexusError
    from nexus.tracking.metrics import evaluate_mot
    from nexus.tracking.mot_format import read_mot

    ground_truth = read_mot(gt, min_confidence=0.5)
    predictions = read_mot(pred)
    if not any(d.tracker_id is not None for d in predictions if len(d)):
        raise NexusError("has no track ids (all -1): evaluate tracker output, not detections", path=pred)
    frames = max(len(ground_truth), len(predictions))
    if ground_truth and ground_truth[0].tracker_id is None and any(len(d) for d in ground_truth):
        raise NexusError("has no object ids: not a ground-truth file", path=gt)
    if not any(len(d) for d in ground_truth):
        raise NexusError(
            "no ground-truth objects (empty, or column 7 is 0 on every row): nothing to score", path=gt
        )
    metrics = evaluate_mot(ground_truth, predictions, iou_threshold=iou)
    if as_json:
        typer.echo(json.dumps(metrics.to_dict(), indent=2))
        return
    typer.echo(
        f"frames {frames}  gt objects {metrics.gt_objects}  predicted tracks {metrics.predicted_tracks}"
    )
    typer.echo(f"MOTA {metrics.mota:.4f}  MOTP {metrics.motp:.4f}  IDF1 {metrics.idf1:.4f}")
    typer.echo(f"HOTA {metrics.hota:.4f}  DetA {metrics.deta:.4f}  AssA {metrics.assa:.4f}")
    typer.echo(
        f"ID switches {metrics.id_switches}  FP {metrics.false_positives}  FN {metrics.misses}  "
        f"precision {metrics.precision:.4f}  recall {metrics.recall:.4f}"
    )
