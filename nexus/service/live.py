"""Live streams: detect and track on an rtsp/http(s) stream or a file read as one, push every frame's
detections to WebSocket subscribers.

Each stream is one :class:`~nexus.video.StreamSource` (reader thread, reconnect with backoff, only the
newest frame kept) and one asyncio task that runs the detector and the stream's own tracker on a thread.

State is kept in this process's memory: a stream runs in, and is listed by, the process that started
it, and a restart ends every stream. Run the service as one process (or route a stream's clients to
the same process) when using streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from nexus.errors import NexusError
from nexus.service.db import utcnow
from nexus.service.processing import DetectorCache, JobFailed, detect_and_track, detection_rows, make_tracker
from nexus.service.schemas.processing import StreamCreate
from nexus.service.settings import ServiceSettings
from nexus.video import StreamConfig, StreamSource, StreamState

logger = logging.getLogger("nexus.service.live")
QUEUE_SIZE = 64
KEEP_FINISHED = 32
FINISHED = frozenset({"ended", "failed", "stopped"})


@dataclass
class LiveStream:
    """One running (or finished) stream and its subscribers' queues."""

    id: int
    request: StreamCreate
    model: str
    source: str
    created_by: int
    created_at: datetime = field(default_factory=utcnow)
    state: str = "starting"
    frames_processed: int = 0
    last_error: str | None = None
    reader: StreamSource | None = None
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    subscribers: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)
    final: dict[str, Any] | None = None

    def out(self) -> dict[str, Any]:
        """The ``StreamOut`` view."""
        stats = self.reader.stats if self.reader is not None else None
        return {
            "id": self.id,
            "name": self.request.name or self.source,
            "source": self.source,
            "model": self.model,
            "tracker": self.request.tracker,
            "state": self.state,
            "frames_processed": self.frames_processed,
            "frames_dropped": stats.frames_dropped if stats else 0,
            "connections": stats.connections if stats else 0,
            "last_error": self.last_error or (stats.last_error if stats else None),
            "created_by": self.created_by,
            "created_at": self.created_at,
            "options": self.request.model_dump(mode="json", exclude={"source", "name"}),
        }


def _state(reader: StreamSource) -> str:
    state = reader.state
    if state == StreamState.STREAMING:
        return "running"
    if state in (StreamState.BACKOFF, StreamState.CONNECTING) and reader.stats.connections:
        return "reconnecting"
    return {StreamState.ENDED: "ended", StreamState.FAILED: "failed", StreamState.STOPPED: "stopped"}.get(
        state, "starting"
    )


class StreamManager:
    """The live streams of this process."""

    def __init__(self, settings: ServiceSettings, detectors: DetectorCache) -> None:
        self.settings = settings
        self.detectors = detectors
        self._streams: dict[int, LiveStream] = {}
        self._next_id = 1

    def check_source(self, source: str) -> str:
        """The source to open: a network URL as given, or a video file inside ``stream_file_dirs``.

        Raises:
            NexusError: a file outside those folders, or one that does not exist.
        """
        try:
            scheme = urlparse(source).scheme.lower()
        except ValueError as error:  # e.g. an unclosed IPv6 bracket
            raise NexusError(f"source {source!r} is not a valid URL: {error}") from error
        if scheme in {"rtsp", "rtsps", "http", "https"}:
            return source
        path = Path(source.removeprefix("file://")).resolve()
        roots = [Path(root).resolve() for root in self.settings.stream_file_dirs or []]
        if not any(root in path.parents for root in roots):
            raise NexusError(f"file source {source!r} is not inside the service's stream folders")
        try:
            exists = path.is_file()
        except OSError:  # e.g. a name too long for the file system
            exists = False
        if not exists:
            raise NexusError(f"file source {source!r} does not exist")
        return str(path)

    def active(self) -> int:
        """Streams not finished yet."""
        return sum(stream.state not in FINISHED for stream in self._streams.values())

    def list(self) -> list[LiveStream]:
        return sorted(self._streams.values(), key=lambda s: s.id)

    def get(self, stream_id: int) -> LiveStream | None:
        return self._streams.get(stream_id)

    def start(self, request: StreamCreate, source: str, model: str, user_id: int) -> LiveStream:
        """Register and start a stream (the caller checked ``source``, ``model`` and the limit)."""
        stream = LiveStream(id=self._next_id, request=request, model=model, source=source, created_by=user_id)
        self._next_id += 1
        self._streams[stream.id] = stream
        self._prune()
        stream.task = asyncio.create_task(self._run(stream), name=f"stream-{stream.id}")
        return stream

    async def stop(self, stream_id: int) -> LiveStream | None:
        """Stop a stream, wait for its task, tell subscribers, and forget it."""
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return None
        stream.stopping = True
        if stream.task is not None:
            await asyncio.shield(stream.task)
        return stream

    async def stop_all(self) -> None:
        """Stop every stream (at shutdown)."""
        await asyncio.gather(*(self.stop(stream_id) for stream_id in list(self._streams)))

    def subscribe(self, stream: LiveStream) -> asyncio.Queue[dict[str, Any]]:
        """A queue of the stream's messages from now on (the final one has ``type: end``)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        if stream.final is not None:
            queue.put_nowait(stream.final)
        else:
            stream.subscribers.add(queue)
        return queue

    @staticmethod
    def unsubscribe(stream: LiveStream, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop delivering to ``queue`` (its WebSocket closed)."""
        stream.subscribers.discard(queue)

    def _prune(self) -> None:
        finished = [s.id for s in self.list() if s.state in FINISHED]
        for stream_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            self._streams.pop(stream_id, None)

    async def _run(self, stream: LiveStream) -> None:
        options = stream.request
        reader: StreamSource | None = None
        try:
            detector = await asyncio.to_thread(self.detectors.get, stream.model)
            config = StreamConfig(buffer="latest", max_fps=options.max_fps, realtime=options.realtime)
            reader = stream.reader = StreamSource(stream.source, config, name=options.name)
            reader.start()
            tracker = make_tracker(options, None)
            while not stream.stopping:
                frame = await asyncio.to_thread(reader.read, 0.25)
                stream.state = _state(reader)
                if frame is None:
                    if stream.state in FINISHED:
                        frame = reader.read(timeout=0)  # a last frame may have arrived meanwhile
                        if frame is None:
                            break
                    else:
                        continue
                pairs = await asyncio.to_thread(detect_and_track, detector, tracker, [frame.image], options)
                detections, tracked = pairs[0]
                stream.frames_processed += 1
                self._publish(
                    stream,
                    {
                        "type": "frame",
                        "stream_id": stream.id,
                        "frame": frame.index,
                        "timestamp_s": round(frame.time, 6),
                        "connection": frame.connection,
                        "detections": detection_rows(
                            detections, tracked, frame.index, frame.time, detector.names
                        ),
                    },
                )
        except (JobFailed, NexusError) as error:
            stream.last_error = str(error)
            stream.state = "failed"
        except Exception as error:
            logger.exception("stream %s failed", stream.id)
            stream.last_error = f"internal error: {type(error).__name__}: {error}"
            stream.state = "failed"
        finally:
            if reader is not None:
                await asyncio.to_thread(reader.stop)
                if stream.state != "failed":
                    stream.state = "stopped" if stream.stopping else _state(reader)
            elif stream.stopping:
                stream.state = "stopped"
            stream.final = {"type": "end", "stream_id": stream.id, **_jsonable(stream.out())}
            for queue in stream.subscribers:
                self._put(queue, stream.final)
            stream.subscribers.clear()

    def _publish(self, stream: LiveStream, message: dict[str, Any]) -> None:
        for queue in stream.subscribers:
            self._put(queue, message)

    @staticmethod
    def _put(queue: asyncio.Queue[dict[str, Any]], message: dict[str, Any]) -> None:
        """Put without waiting: a slow subscriber loses its oldest message, not the stream its pace."""
        while True:
            try:
                queue.put_nowait(message)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()


def _jsonable(out: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in out.items() if k != "id"}
