"""Detect and track objects in a folder of videos with Spark, one video per task, into a Delta table.

Each task decodes its video with the same sampling, batched detection and tracker as the metadata
service's processing jobs (:func:`nexus.service.processing.analyse_video`), so a video gives the same
rows either way. One row per detection with its frame, time and track id; a video that cannot be
decoded (not a video, truncated, damaged) gets one row with ``error`` set. Videos are opened by path:
on a cluster they must sit on a filesystem every executor mounts.

Example:
    >>> config = BatchTrackConfig(videos="clips/", model="model.onnx", table="tables/tracks")
    >>> run_batch_track(config).videos  # doctest: +SKIP
    12
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

from nexus.batch.jobs import (
    BatchError,
    WriteMode,
    check_master,
    commit_staged,
    detector_for,
    prepare_job,
    result_schema,
    spark_ddl,
    stage_rows,
)

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".ts"})
Tracker = Literal["bytetrack", "sort", "ocsort"]


def track_schema():
    """The Arrow schema of the rows a video job writes."""
    import pyarrow as pa

    return result_schema(
        [
            ("video_path", pa.string()),
            ("frame", pa.int32()),
            ("timestamp_s", pa.float64()),
            ("track_id", pa.int32()),
        ]
    )


@dataclass(frozen=True)
class BatchTrackConfig:
    """What a video batch job reads, runs and writes.

    Args:
        videos: a folder of videos (searched recursively for ``VIDEO_SUFFIXES``).
        model: an exported model file, or ``models:/name@alias`` / ``s3://`` resolved on the driver.
        table: the Delta table folder (created when missing).
        master: the Spark master.
        tracker: ``bytetrack``, ``sort`` or ``ocsort``.
        tracker_options: the tracker's settings (as in ``POST /videos/{id}/process``).
        conf: detector confidence threshold.
        iou: NMS IoU threshold.
        imgsz: inference size; the model's own when omitted.
        every: keep every Nth frame.
        fps: keep frames at about this rate instead.
        batch_size: frames per forward pass.
        mode: ``append`` or ``overwrite``.
        job_id: stored in every row; a fresh id when omitted.
    """

    videos: str | Path
    model: str | Path
    table: str | Path
    master: str = "local[2]"
    tracker: Tracker = "bytetrack"
    tracker_options: dict[str, float] | None = None
    conf: float = 0.25
    iou: float = 0.7
    imgsz: int | None = None
    every: int = 1
    fps: float | None = None
    batch_size: int = 8
    mode: WriteMode = "append"
    job_id: str | None = None

    def __post_init__(self) -> None:
        from pydantic import ValidationError

        if not Path(self.videos).is_dir():
            raise BatchError("no such folder of videos", path=self.videos)
        if self.mode not in ("append", "overwrite"):
            raise BatchError(f"mode must be append or overwrite, got {self.mode!r}")
        check_master(self.master)
        try:
            self.process_request()
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise BatchError(f"{field}: {first['msg']}") from None

    def process_request(self) -> Any:
        """The same options as a service processing job (validated there)."""
        from nexus.service.schemas.processing import ProcessRequest

        return ProcessRequest(
            tracker=self.tracker,
            tracker_options=self.tracker_options or {},
            conf=self.conf,
            iou=self.iou,
            imgsz=self.imgsz,
            every=self.every,
            fps=self.fps,
            batch_size=self.batch_size,
        )


@dataclass(frozen=True)
class BatchTrackResult:
    """What a video job wrote."""

    job_id: str
    videos: int
    failed_videos: int
    detections: int
    tracks: int
    table: str
    table_version: int
    seconds: float


def track_partition(batches: Iterator[Any], *, model: str, config: BatchTrackConfig, job_id: str):
    """``mapInArrow`` body: video paths in, detection rows (with track ids) out, one video at a time."""
    import pyarrow as pa

    from nexus.service.processing import JobFailed, JobProgress, analyse_video

    options = config.process_request()
    schema = track_schema()
    common = {"model": model, "job_id": job_id}
    for batch in batches:
        for path in batch.column("video_path").to_pylist():
            stamp = {**common, "video_path": path, "predicted_at": datetime.now(UTC)}
            try:
                result = analyse_video(
                    Path(path), lambda: detector_for(model), options, JobProgress(), threading.Event()
                )
            except JobFailed as error:
                rows = [{**stamp, "error": str(error)}]
            else:
                rows = [{**row, **stamp} for row in result.rows] or [{**stamp}]
            yield pa.RecordBatch.from_pylist(rows, schema=schema)


def find_videos(folder: str | Path) -> list[str]:
    """Video files under ``folder`` (recursive), sorted."""
    return sorted(
        str(p.resolve())
        for p in Path(folder).rglob("*")
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
    )


def run_batch_track(config: BatchTrackConfig, spark: Any = None) -> BatchTrackResult:
    """Run ``config``'s job on ``spark``, the active session, or a new one on ``config.master``.

    Raises:
        BatchError: no videos, an unusable model or table path.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    started = time.perf_counter()
    videos = find_videos(config.videos)
    if not videos:
        raise BatchError(f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) under {config.videos}")
    target = prepare_job(config.table, config.model, config.job_id)

    def build(session: Any) -> Any:
        parallelism = max(1, min(len(videos), session.sparkContext.defaultParallelism))
        paths = session.createDataFrame([(v,) for v in videos], "video_path string").repartition(parallelism)
        return paths.mapInArrow(
            partial(track_partition, model=target.model, config=config, job_id=target.job_id),
            spark_ddl(track_schema()),
        )

    stage_rows(spark, config.master, target.staging, build)
    try:
        staged = ds.dataset(str(target.staging), format="parquet", schema=track_schema())
        columns = staged.to_table(columns=["video_path", "frame", "track_id", "error"])
        failed = len(pc.unique(pc.filter(columns["video_path"], pc.is_valid(columns["error"]))))
        detections = int(pc.sum(pc.is_valid(columns["frame"])).as_py() or 0)
        tracked = columns.filter(pc.is_valid(columns["track_id"])).select(["video_path", "track_id"])
        tracks = tracked.group_by(["video_path", "track_id"]).aggregate([]).num_rows
        version = commit_staged(staged, target.table, config.mode)
    finally:
        shutil.rmtree(target.staging, ignore_errors=True)
    return BatchTrackResult(
        job_id=target.job_id,
        videos=len(videos),
        failed_videos=failed,
        detections=detections,
        tracks=tracks,
        table=str(target.table),
        table_version=version,
        seconds=time.perf_counter() - started,
    )
