"""``nexus batch predict|track``: Spark batch detection (images) and tracking (videos) into Delta tables."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer

app = typer.Typer(help="Batch jobs on Spark that write Delta Lake tables.", no_args_is_help=True)


@app.command("predict")
def predict_command(
    images: Annotated[str, typer.Argument(help="Folder of images (recursive) or a Spark-readable URI.")],
    model: Annotated[str, typer.Option("--model", help="Exported model, models:/name@alias or s3://.")],
    table: Annotated[str, typer.Option("--table", help="Delta table folder (created when missing).")],
    master: Annotated[str, typer.Option("--master", help="Spark master.")] = "local[2]",
    conf: Annotated[float, typer.Option("--conf", help="Confidence threshold.")] = 0.25,
    iou: Annotated[float, typer.Option("--iou", help="NMS IoU threshold.")] = 0.7,
    imgsz: Annotated[int | None, typer.Option("--imgsz", help="Inference size (the model's own).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")] = 8,
    mode: Annotated[str, typer.Option("--mode", help="append or overwrite.")] = "append",
    full_decode: Annotated[
        bool,
        typer.Option(
            "--full-decode",
            help="Decode every JPEG whole (default: one at least twice its letterboxed size at 1/2-1/8).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Detect objects in every image with Spark and commit the detections to a Delta table in one
    transaction (one row per detection; images without detections or that fail to decode get one row).

    Example:
        nexus batch predict data/frames --model export/model.onnx --table tables/detections
    """
    from nexus.batch import BatchPredictConfig, run_batch_predict

    config = BatchPredictConfig(
        images=images,
        model=model,
        table=table,
        master=master,
        conf=conf,
        iou=iou,
        imgsz=imgsz,
        batch_size=batch_size,
        mode=mode,  # type: ignore[arg-type]
        full_decode=full_decode,
    )
    result = run_batch_predict(config)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result), indent=2))
        return
    typer.echo(
        f"{result.images} images, {result.detections} detections, {result.failed_images} failed -> "
        f"{result.table} (version {result.table_version}, job {result.job_id}, {result.seconds:.1f} s)"
    )


@app.command("track")
def track_command(
    videos: Annotated[str, typer.Argument(help="Folder of videos (recursive).")],
    model: Annotated[str, typer.Option("--model", help="Exported model, models:/name@alias or s3://.")],
    table: Annotated[str, typer.Option("--table", help="Delta table folder (created when missing).")],
    master: Annotated[str, typer.Option("--master", help="Spark master.")] = "local[2]",
    tracker: Annotated[str, typer.Option("--tracker", help="bytetrack, sort or ocsort.")] = "bytetrack",
    conf: Annotated[float, typer.Option("--conf", help="Confidence threshold.")] = 0.25,
    iou: Annotated[float, typer.Option("--iou", help="NMS IoU threshold.")] = 0.7,
    imgsz: Annotated[int | None, typer.Option("--imgsz", help="Inference size (the model's own).")] = None,
    every: Annotated[int, typer.Option("--every", help="Keep every Nth frame.")] = 1,
    fps: Annotated[float | None, typer.Option("--fps", help="Keep frames at about this rate.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Frames per forward pass.")] = 8,
    mode: Annotated[str, typer.Option("--mode", help="append or overwrite.")] = "append",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Detect and track objects in every video (one Spark task per video) and commit the rows (frame,
    time, track id, box) to a Delta table in one transaction.

    Example:
        nexus batch track clips/ --model export/model.onnx --table tables/tracks --fps 5
    """
    from nexus.batch.video import BatchTrackConfig, run_batch_track

    config = BatchTrackConfig(
        videos=videos,
        model=model,
        table=table,
        master=master,
        tracker=tracker,  # type: ignore[arg-type]
        conf=conf,
        iou=iou,
        imgsz=imgsz,
        every=every,
        fps=fps,
        batch_size=batch_size,
        mode=mode,  # type: ignore[arg-type]
    )
    result = run_batch_track(config)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result), indent=2))
        return
    typer.echo(
        f"{result.videos} videos ({result.failed_videos} failed), {result.detections} detections, "
        f"{result.tracks} tracks -> {result.table} (version {result.table_version}, job {result.job_id})"
    )
