"""The processing worker: the ``videos`` table is the queue, this process runs up to N jobs at once.

``POST /videos/{id}/process`` (or an upload with ``process=true``) sets a video ``queued`` and stores the
job's options in ``extra["processing"]``. Each of ``NEXUS_API_PROCESSING_WORKERS`` loops claims the
oldest queued video with a compare-and-set (``queued → processing``), so several service processes can
share one database; it copies the object to a temp file and runs :func:`analyse_video` on a thread.
Progress (frames read/total, detections) is written to ``extra["processing"]["progress"]`` about once a
second. The result replaces the video's detections in one transaction (delete + insert), so a failed
or interrupted job leaves the earlier results, and every other video's, as they were.

Restarts: a graceful shutdown puts running jobs back in the queue; queued jobs are picked up by the
next start. A video found ``processing`` when a process with workers starts was interrupted by a
crash: it is queued again, and failed after :data:`MAX_RESTARTS` such interruptions (this recovery
assumes that no other process with workers is running jobs on the same database at that moment; API-only
processes, ``NEXUS_API_PROCESSING_WORKERS=0``, recover nothing).

Results are collected in memory until the job ends (about 150 bytes per detection).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from nexus.service.db import utcnow
from nexus.service.processing import (
    DetectorCache,
    JobCancelled,
    JobFailed,
    JobProgress,
    JobResult,
    analyse_video,
)
from nexus.service.schemas.processing import ProcessRequest
from nexus.service.settings import ServiceSettings
from nexus.service.storage import ObjectStore
from nexus.service.tables import Detection, Video

logger = logging.getLogger("nexus.service.jobs")
ACTIVE = ("queued", "processing")
MAX_RESTARTS = 3
PROGRESS_SECONDS = 1.0
INSERT_BATCH = 1000
SUFFIXES = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/x-matroska": ".mkv",
    "video/x-msvideo": ".avi",
    "video/mp2t": ".ts",
}


def job_of(video: Video) -> dict[str, Any]:
    """A copy of the video's ``extra["processing"]`` (the job's options, progress and result)."""
    return dict((video.extra or {}).get("processing") or {})


def with_job(video: Video, job: dict[str, Any]) -> dict[str, Any]:
    """The video's ``extra`` with ``processing`` replaced (JSON columns need a new dict to be saved)."""
    return {**(video.extra or {}), "processing": job}


def new_job(options: ProcessRequest, model: str) -> dict[str, Any]:
    """What ``extra["processing"]`` holds for a freshly queued job."""
    return {
        "options": options.model_dump(mode="json"),
        "model": model,
        "queued_at": utcnow().isoformat(),
        "restarts": 0,
        "progress": None,
    }


async def queue_video(session: AsyncSession, video: Video, options: ProcessRequest, model: str) -> bool:
    """Mark ``video`` queued with these options unless a job is queued or running (then ``False``).

    The check and the change are one ``UPDATE ... WHERE status NOT IN (queued, processing)``, so two
    concurrent requests cannot both queue it. The caller commits.
    """
    result = await session.execute(
        update(Video)
        .where(Video.id == video.id, Video.status.not_in(ACTIVE))
        .values(status="queued", message="queued", extra=with_job(video, new_job(options, model)))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


class ProcessingWorker:
    """Runs queued processing jobs of this service process, ``settings.processing_workers`` at a time."""

    def __init__(
        self,
        settings: ServiceSettings,
        sessionmaker: async_sessionmaker[AsyncSession],
        store: ObjectStore,
        detectors: DetectorCache,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.store = store
        self.detectors = detectors
        self._wake = asyncio.Event()
        self._cancel = threading.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Recover jobs a crash interrupted and start the worker loops; with 0 workers, do neither
        (an API-only process leaves the jobs to the process that runs them)."""
        workers = self.settings.processing_workers
        if workers:
            await self.recover()
            self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nexus-job")
            self._tasks = [asyncio.create_task(self._loop(), name=f"processing-{i}") for i in range(workers)]

    def notify(self) -> None:
        """A job was queued: wake an idle loop now instead of at its next poll."""
        self._wake.set()

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming jobs; running jobs stop at their next frame and go back to the queue."""
        self._stopping = True
        self._cancel.set()
        self._wake.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def recover(self) -> None:
        """Queue again (or fail, after ``MAX_RESTARTS``) the videos a crashed process left processing."""
        async with self.sessionmaker() as session:
            videos = (
                (await session.execute(select(Video).where(Video.status == "processing"))).scalars().all()
            )
            for video in videos:
                job = job_of(video)
                job["restarts"] = int(job.get("restarts") or 0) + 1
                if job["restarts"] > MAX_RESTARTS:
                    status = "failed"
                    message = (
                        f"interrupted by {MAX_RESTARTS} service restarts; not retried "
                        f"(POST /videos/{video.id}/process to try again)"
                    )
                else:
                    status, message = "queued", "queued again after a service restart interrupted processing"
                await session.execute(
                    update(Video)
                    .where(Video.id == video.id, Video.status == "processing")
                    .values(status=status, message=message, extra=with_job(video, job))
                    .execution_options(synchronize_session=False)
                )
                logger.warning("video %s: %s", video.id, message)
            await session.commit()

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                video_id = await self._claim()
            except Exception:
                logger.exception("claiming a processing job failed")
                video_id = None
            if video_id is not None:
                self._wake.set()  # another idle loop may take the next job
                await self._run(video_id)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.processing_poll_seconds)
            self._wake.clear()

    async def _claim(self) -> int | None:
        async with self.sessionmaker() as session:
            candidates = (
                await session.execute(
                    select(Video)
                    .where(Video.status == "queued")
                    .order_by(Video.updated_at, Video.id)
                    .limit(8)
                )
            ).scalars()
            for video in list(candidates):
                if self._stopping:
                    return None
                job = {**job_of(video), "started_at": utcnow().isoformat(), "progress": None}
                result = await session.execute(
                    update(Video)
                    .where(Video.id == video.id, Video.status == "queued")
                    .values(status="processing", message="processing", extra=with_job(video, job))
                    .execution_options(synchronize_session=False)
                )
                await session.commit()
                if result.rowcount == 1:
                    return video.id
        return None

    async def _run(self, video_id: int) -> None:
        progress = JobProgress()
        work_file: Path | None = None
        loop = asyncio.get_running_loop()
        try:
            async with self.sessionmaker() as session:
                video = await session.get(Video, video_id)
            if video is None:
                return
            job = job_of(video)
            try:
                options = ProcessRequest.model_validate(job.get("options") or {})
            except ValidationError as error:
                raise JobFailed(f"invalid processing options: {error.errors()[0]['msg']}") from error
            model = job.get("model") or self.settings.detector_model
            if not model:
                raise JobFailed(
                    "no model: pass one to POST /videos/{id}/process or set NEXUS_API_DETECTOR_MODEL"
                )
            work_file = await self._fetch(video)
            load = functools.partial(self.detectors.get, model)
            future = loop.run_in_executor(
                self._executor, analyse_video, work_file, load, options, progress, self._cancel
            )
            result = await self._watch(video_id, future, progress)
            await self._store(video_id, result, progress)
        except JobCancelled:
            await self._finish(
                video_id, "queued", "interrupted by a service shutdown; queued again", progress
            )
        except JobFailed as error:
            await self._finish(video_id, "failed", str(error), progress)
        except Exception as error:
            logger.exception("processing video %s failed", video_id)
            await self._finish(
                video_id, "failed", f"internal error: {type(error).__name__}: {error}", progress
            )
        finally:
            if work_file is not None:
                work_file.unlink(missing_ok=True)

    async def _fetch(self, video: Video) -> Path:
        """Copy the video's object to a temp file (PyAV needs a seekable file)."""
        if not await self.store.exists(video.object_key):
            raise JobFailed(f"content of video {video.id} is missing from storage")
        folder = self.settings.home / "work"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"video-{video.id}-{uuid.uuid4().hex}{SUFFIXES.get(video.content_type, '')}"
        try:
            with path.open("wb") as handle:
                async for chunk in self.store.stream(video.object_key):
                    await asyncio.to_thread(handle.write, chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    async def _watch(
        self, video_id: int, future: asyncio.Future[JobResult], progress: JobProgress
    ) -> JobResult:
        """Wait for the job thread, writing its progress about once a second."""
        written: dict[str, Any] | None = None
        while True:
            done, _ = await asyncio.wait({future}, timeout=PROGRESS_SECONDS)
            if done:
                return future.result()
            snapshot = progress.as_dict()
            if snapshot != written:
                await self._write_progress(video_id, progress)
                written = snapshot

    async def _write_progress(self, video_id: int, progress: JobProgress) -> None:
        async with self.sessionmaker() as session:
            video = await session.get(Video, video_id)
            if video is None or video.status != "processing":
                return
            job = {**job_of(video), "progress": progress.as_dict()}
            await session.execute(
                update(Video)
                .where(Video.id == video_id, Video.status == "processing")
                .values(extra=with_job(video, job), **_metadata(progress))
                .execution_options(synchronize_session=False)
            )
            await session.commit()

    async def _store(self, video_id: int, result: JobResult, progress: JobProgress) -> None:
        """Replace the video's detections and mark it processed, all in one transaction."""
        rows = [{"video_id": video_id, **row} for row in result.rows]
        async with self.sessionmaker() as session, session.begin():
            video = (
                await session.execute(select(Video).where(Video.id == video_id).with_for_update())
            ).scalar_one_or_none()
            if video is None or video.status != "processing":
                logger.warning("video %s changed while it was processing; result discarded", video_id)
                return
            await session.execute(delete(Detection).where(Detection.video_id == video_id))
            for start in range(0, len(rows), INSERT_BATCH):
                await session.execute(insert(Detection), rows[start : start + INSERT_BATCH])
            job = job_of(video)
            job.update(
                progress=progress.as_dict(),
                finished_at=utcnow().isoformat(),
                result={
                    "frames_processed": result.frames_processed,
                    "detections": len(rows),
                    "tracks": result.tracks,
                    "seconds": round(time.monotonic() - progress.started, 3),
                },
            )
            for key, value in _metadata(progress).items():
                setattr(video, key, value)
            video.extra = with_job(video, job)
            video.status = "processed"
            video.message = (
                f"processed {result.frames_processed} frames: {len(rows)} detections, {result.tracks} tracks"
            )

    async def _finish(self, video_id: int, status: str, message: str, progress: JobProgress) -> None:
        """End a job that produced no result: its status and reason; stored detections stay."""
        try:
            async with self.sessionmaker() as session:
                video = await session.get(Video, video_id)
                if video is None or video.status != "processing":
                    return
                job = {**job_of(video), "progress": progress.as_dict(), "finished_at": utcnow().isoformat()}
                values = {"status": status, "message": message[:10_000], "extra": with_job(video, job)}
                await session.execute(
                    update(Video)
                    .where(Video.id == video_id, Video.status == "processing")
                    .values(**values, **_metadata(progress))
                    .execution_options(synchronize_session=False)
                )
                await session.commit()
        except Exception:
            logger.exception("could not record the end of processing video %s", video_id)


def _metadata(progress: JobProgress) -> dict[str, Any]:
    info = progress.info
    if info is None:
        return {}
    return {
        "fps": info.fps or None,
        "frame_count": info.frame_count,
        "width": info.width,
        "height": info.height,
        "duration_s": info.duration,
    }
