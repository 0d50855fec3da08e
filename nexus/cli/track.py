"""``nexus track VIDEO --model MODEL --tracker bytetrack --out tracks.txt`` or ``--detections dets.txt``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def track_command(
    video: Annotated[Path | None, typer.Argument(help="Video file (omit with --detections).")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="Detection model (.onnx, .pt).")] = None,
    detections: Annotated[
        Path | None, typer.Option("--detections", help="MOTChallenge detections file (tracker-only mode).")
    ] = None,
    tracker: Annotated[
        str, typer.Option("--tracker", help="sort, bytetrack, ocsort or deepsort.")
    ] = "bytetrack",
    out: Annotated[Path, typer.Option("--out", help="MOTChallenge tracks file to write.")] = Path(
        "tracks.txt"
    ),
    conf: Annotated[float, typer.Option("--conf", help="Detector confidence threshold.")] = 0.1,
    imgsz: Annotated[int | None, typer.Option("--imgsz", help="Detector input size.")] = None,
    annotate: Annotated[
        Path | None, typer.Option("--annotate", help="Also write an annotated H.264 video here.")
    ] = None,
    reid: Annotated[Path | None, typer.Option("--reid", help="Re-id ONNX model (deepsort).")] = None,
    reid_size: Annotated[
        str | None, typer.Option("--reid-size", help="Re-id input WIDTHxHEIGHT when the model's is dynamic.")
    ] = None,
) -> None:
    """Track objects in a video (detector + tracker) or in a detections file (tracker only).

    Example:
        nexus track clip.mp4 --model best.onnx --tracker bytetrack --out tracks.txt --annotate out.mp4
        nexus track --detections det.txt --tracker ocsort --out tracks.txt
    """
    from nexus.errors import NexusError
    from nexus.tracking import create_tracker
    from nexus.tracking.pipeline import track_detections_file, track_video

    embedder = None
    if reid is not None:
        from nexus.tracking.reid import OnnxReIdEmbedder

        size = None
        if reid_size:
            try:
                width, height = (int(v) for v in reid_size.lower().split("x"))
                if min(width, height) < 1:
                    raise ValueError
            except ValueError as error:
                message = f"--reid-size must look like 64x128 (sizes >= 1), got {reid_size!r}"
                raise NexusError(message) from error
            size = (width, height)
        embedder = OnnxReIdEmbedder(reid, input_size=size)
    instance = create_tracker(tracker, embedder)
    if tracker.lower() == "deepsort" and embedder is None and video is not None:
        raise NexusError("--tracker deepsort needs --reid MODEL.onnx (a re-id model) to read appearance")
    if video is None:
        if detections is None:
            raise NexusError("give a VIDEO with --model, or --detections FILE for tracker-only mode")
        summary = track_detections_file(detections, instance, out)
    else:
        if model is None and detections is None:
            raise NexusError("give --model MODEL to detect objects in the video, or --detections FILE")
        detector = None
        if model is not None:
            from nexus.inference.detector import Detector

            detector = Detector.from_path(model)
        summary = track_video(
            video,
            instance,
            out,
            detector=detector,
            detections_file=detections,
            conf=conf,
            imgsz=imgsz,
            annotate=annotate,
        )
    typer.echo(
        f"{summary.frames} frames, {summary.detections} detections -> {summary.tracks} tracks "
        f"({summary.tracked} boxes) written to {summary.out}"
    )
    if summary.annotated is not None:
        typer.echo(f"annotated video: {summary.annotated}")
