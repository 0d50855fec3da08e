"""Live sources: RTSP, HTTP(S) and files read as streams, with reconnect, buffering policy and fps cap.

Each ``StreamSource`` runs one reader thread: connect (with a timeout), decode, hand frames over
(``latest`` keeps only the newest, ``all`` queues every frame), and on a drop or a failed connect wait
with exponential backoff and try again. ``stop()`` ends it cleanly from any state, waiting at most
about the open/read timeout. ``MultiStreamSource`` reads several sources with per-source state.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import av
import numpy as np

from nexus.video.errors import StreamError
from nexus.video.reader import frame_to_bgr, upright

BufferPolicy = Literal["latest", "all"]
_NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")


class StreamState(enum.Enum):
    """Where a source's reader is: not started, connecting, reading, waiting to retry, or done."""

    IDLE = "idle"
    CONNECTING = "connecting"
    STREAMING = "streaming"
    BACKOFF = "backoff"
    ENDED = "ended"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class StreamConfig:
    """How a stream is read.

    Attributes:
        buffer: ``"latest"`` keeps only the newest frame (live analytics, never falls behind);
            ``"all"`` queues every frame up to ``max_queue`` and then blocks the reader.
        max_queue: queue size for ``buffer="all"``.
        max_fps: emit at most this many frames per stream second; ``None`` for every frame.
        open_timeout: seconds to wait for a connection (and its first data).
        read_timeout: seconds without data before the connection counts as dropped.
        reconnect: reconnect after a drop or a failed connect.
        backoff_initial: first wait before reconnecting, in seconds; doubles on every failure.
        backoff_max: longest wait between tries, in seconds.
        max_retries: failed tries in a row before giving up (state ``FAILED``); ``None`` never gives up.
        reconnect_on_eof: treat the end of the stream as a drop (on by default for network URLs,
            off for files, whose end is the end).
        realtime: for files, pace frames at their timestamps like a live camera.
        rtsp_transport: ``"tcp"`` (interleaved, passes firewalls and NAT) or ``"udp"`` (RTP over UDP,
            what some cameras and servers only speak).

    Example:
        >>> StreamConfig(buffer="all", max_fps=5, backoff_initial=0.5).backoff_max
        30.0
    """

    buffer: BufferPolicy = "latest"
    max_queue: int = 64
    max_fps: float | None = None
    open_timeout: float = 10.0
    read_timeout: float = 10.0
    reconnect: bool = True
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    max_retries: int | None = None
    reconnect_on_eof: bool | None = None
    realtime: bool = False
    rtsp_transport: str = "tcp"

    def __post_init__(self) -> None:
        if self.buffer not in ("latest", "all"):
            raise ValueError(f"buffer must be 'latest' or 'all', got {self.buffer!r}")
        if self.rtsp_transport not in ("tcp", "udp"):
            raise ValueError(f"rtsp_transport must be 'tcp' or 'udp', got {self.rtsp_transport!r}")
        if self.max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {self.max_queue}")
        if self.max_fps is not None and self.max_fps <= 0:
            raise ValueError(f"max_fps must be > 0, or None for no cap, got {self.max_fps}")
        for name in ("open_timeout", "read_timeout", "backoff_initial", "backoff_max"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        if self.backoff_max < self.backoff_initial:
            raise ValueError(
                f"backoff_max ({self.backoff_max}) must be >= backoff_initial ({self.backoff_initial})"
            )
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, or None to retry forever, got {self.max_retries}")


@dataclass
class StreamFrame:
    """One frame from a stream.

    Attributes:
        source: name of the source it came from.
        index: frames emitted by this source so far (0-based, across reconnects).
        time: presentation time in seconds within the current connection.
        received_at: ``time.monotonic()`` when it was decoded.
        connection: 1 for the first connection, 2 after the first reconnect, ...
        image: ``(H, W, 3)`` uint8 BGR pixels.
    """

    source: str
    index: int
    time: float
    received_at: float
    connection: int
    image: np.ndarray


@dataclass
class StreamStats:
    """Counters of one source (read them any time; the reader thread updates them)."""

    state: StreamState = StreamState.IDLE
    connections: int = 0
    failed_connects: int = 0
    frames_decoded: int = 0
    frames_emitted: int = 0
    frames_dropped: int = 0
    last_error: str | None = None
    backoff_waits: list[float] = field(default_factory=list)


def _is_network(url: str) -> bool:
    return urlparse(url).scheme.lower() in _NETWORK_SCHEMES


class StreamSource:
    """A stream read on a background thread.

    Args:
        url: ``rtsp://``, ``http(s)://`` ... URL, or a file path read as a stream.
        config: reading policy; defaults to ``StreamConfig()``.
        name: a label for frames and logs; the URL when omitted.

    Example:
        >>> source = StreamSource("rtsp://camera/stream", StreamConfig(max_fps=5)).start()  # doctest: +SKIP
        >>> for frame in source:  # doctest: +SKIP
        ...     detections = detector.predict_arrays([frame.image], options)[0]
        >>> source.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str | Path,
        config: StreamConfig | None = None,
        name: str | None = None,
        *,
        _condition: threading.Condition | None = None,
    ) -> None:
        self.url = str(url)
        if not self.url:
            raise StreamError("empty stream URL: pass an rtsp://, http(s):// URL or a file path")
        scheme = urlparse(self.url).scheme.lower()
        if scheme and scheme not in (*_NETWORK_SCHEMES, "file") and len(scheme) > 1:
            raise StreamError(
                f"unsupported URL scheme {scheme!r} (use rtsp, http(s) or a file)", path=self.url
            )
        self.config = config or StreamConfig()
        self.name = name or self.url
        self.stats = StreamStats()
        self._condition = _condition or threading.Condition()
        self._buffer: deque[StreamFrame] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        eof = self.config.reconnect_on_eof
        self._reconnect_on_eof = _is_network(self.url) if eof is None else eof

    @property
    def state(self) -> StreamState:
        """The reader's current state."""
        return self.stats.state

    @property
    def running(self) -> bool:
        """True while the reader thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> StreamSource:
        """Start the reader thread (idempotent); returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"stream:{self.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop reading from any state and wait for the thread (at most ``timeout`` seconds).

        The wait is bounded by the open/read timeout when the thread is blocked inside FFmpeg.
        """
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        if self._thread is not None:
            limit = (
                timeout if timeout is not None else self.config.open_timeout + self.config.read_timeout + 1
            )
            self._thread.join(limit)
        if self._thread is None or not self._thread.is_alive():
            self._set_state(
                StreamState.STOPPED
                if self.state not in (StreamState.ENDED, StreamState.FAILED)
                else self.state
            )

    def __enter__(self) -> StreamSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- consumer side -------------------------------------------------------------------------

    def _pop(self) -> StreamFrame | None:
        return self._buffer.popleft() if self._buffer else None

    def read(self, timeout: float | None = None) -> StreamFrame | None:
        """The next frame (the newest with ``buffer="latest"``); ``None`` on timeout or when done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while True:
                frame = self._pop()
                if frame is not None:
                    self._condition.notify_all()
                    return frame
                if self._finished():
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._condition.wait(0.25 if remaining is None else min(remaining, 0.25))

    def _finished(self) -> bool:
        return not self._buffer and (
            self._stop.is_set() or self.state in (StreamState.ENDED, StreamState.FAILED)
        )

    def __iter__(self) -> Iterator[StreamFrame]:
        """Frames until the stream ends, fails for good, or ``stop()`` is called; starts the reader."""
        self.start()
        while True:
            frame = self.read(timeout=0.5)
            if frame is not None:
                yield frame
            elif self._finished():
                if self._thread is not None:
                    self._thread.join(1.0)  # it has set its final state; let it exit
                return

    # ----- reader thread -------------------------------------------------------------------------

    def _set_state(self, state: StreamState) -> None:
        with self._condition:
            self.stats.state = state
            self._condition.notify_all()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._set_state(StreamState.CONNECTING)
            try:
                container = self._open()
            except (av.FFmpegError, OSError) as error:
                self.stats.failed_connects += 1
                self.stats.last_error = f"{self.url}: cannot connect ({_short(error)})"
                failures += 1
                if not self._wait_before_retry(failures):
                    return
                continue
            failures = 0
            self.stats.connections += 1
            self._set_state(StreamState.STREAMING)
            ended_cleanly = self._read_frames(container)
            if self._stop.is_set():
                break
            if ended_cleanly and not self._reconnect_on_eof:
                self._set_state(StreamState.ENDED)
                return
            failures += 1
            if not self._wait_before_retry(failures):
                return
        self._set_state(StreamState.STOPPED)

    def _wait_before_retry(self, failures: int) -> bool:
        config = self.config
        if self._stop.is_set():
            self._set_state(StreamState.STOPPED)
            return False
        if not config.reconnect or (config.max_retries is not None and failures > config.max_retries):
            self._set_state(StreamState.FAILED)
            return False
        delay = min(config.backoff_max, config.backoff_initial * 2 ** (failures - 1))
        self.stats.backoff_waits.append(delay)
        self._set_state(StreamState.BACKOFF)
        if self._stop.wait(delay):
            self._set_state(StreamState.STOPPED)
            return False
        return True

    def _open(self) -> av.container.InputContainer:
        options: dict[str, str] = {}
        scheme = urlparse(self.url).scheme.lower()
        if scheme.startswith("rtsp"):
            options["rtsp_transport"] = self.config.rtsp_transport
        if not _is_network(self.url):
            path = Path(self.url.removeprefix("file://"))
            if not path.is_file():
                raise FileNotFoundError(2, "no such file", str(path))
        container = av.open(
            self.url, mode="r", options=options, timeout=(self.config.open_timeout, self.config.read_timeout)
        )
        if not container.streams.video:
            container.close()
            raise av.error.InvalidDataError(1094995529, "no video stream")
        return container

    def _read_frames(self, container: av.container.InputContainer) -> bool:
        """Decode until the end (True), a drop (False) or stop; every frame goes through the fps cap."""
        config = self.config
        stream = container.streams.video[0]
        min_gap = 1.0 / config.max_fps if config.max_fps else 0.0
        last_emitted: float | None = None
        started = time.monotonic()
        first_time: float | None = None
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return False
                for frame in packet.decode():
                    self.stats.frames_decoded += 1
                    pts_time = float(frame.time) if frame.time is not None else time.monotonic() - started
                    first_time = pts_time if first_time is None else first_time
                    stream_time = pts_time - first_time
                    if config.realtime and not _is_network(self.url):
                        delay = stream_time - (time.monotonic() - started)
                        if delay > 0 and self._stop.wait(delay):
                            return False
                    if last_emitted is not None and stream_time - last_emitted < min_gap - 1e-6:
                        self.stats.frames_dropped += 1
                        continue
                    last_emitted = stream_time
                    self._emit(
                        StreamFrame(
                            source=self.name,
                            index=self.stats.frames_emitted,
                            time=stream_time,
                            received_at=time.monotonic(),
                            connection=self.stats.connections,
                            image=upright(frame_to_bgr(frame), frame.rotation),
                        )
                    )
                    if self._stop.is_set():
                        return False
            return True
        except (av.FFmpegError, OSError) as error:
            self.stats.last_error = f"{self.url}: stream dropped ({_short(error)})"
            return False
        finally:
            container.close()

    def _emit(self, frame: StreamFrame) -> None:
        with self._condition:
            if self.config.buffer == "latest":
                self.stats.frames_dropped += len(self._buffer)
                self._buffer.clear()
            else:
                while len(self._buffer) >= self.config.max_queue and not self._stop.is_set():
                    self._condition.wait(0.1)
            self._buffer.append(frame)
            self.stats.frames_emitted += 1
            self._condition.notify_all()


def _short(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return str(text).splitlines()[0]


class MultiStreamSource:
    """Several streams read at once; each keeps its own state, counters, buffer and reconnects.

    Args:
        urls: URLs or file paths; or a mapping name -> URL.
        config: one policy for all sources.

    Example:
        >>> with MultiStreamSource({"gate": "rtsp://a/1", "dock": "rtsp://b/2"}) as streams:  # doctest: +SKIP
        ...     for frames in streams:  # one list per wake-up: at most one frame per source
        ...         ...
    """

    def __init__(
        self, urls: Sequence[str | Path] | dict[str, str | Path], config: StreamConfig | None = None
    ) -> None:
        named = dict(urls) if isinstance(urls, dict) else {str(u): u for u in urls}
        if not named:
            raise StreamError("no stream URLs given: pass at least one URL or file path")
        self._condition = threading.Condition()
        self.sources = {
            name: StreamSource(url, config, name=name, _condition=self._condition)
            for name, url in named.items()
        }

    def start(self) -> MultiStreamSource:
        """Start every source's reader."""
        for source in self.sources.values():
            source.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop every source (they stop in parallel)."""
        for source in self.sources.values():
            source._stop.set()
        for source in self.sources.values():
            source.stop(timeout)

    def states(self) -> dict[str, StreamState]:
        """Each source's current state."""
        return {name: source.state for name, source in self.sources.items()}

    def read(self, timeout: float | None = None) -> list[StreamFrame]:
        """Wait until some source has a frame; return at most one frame per source (empty on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while True:
                frames = [f for f in (s._pop() for s in self.sources.values()) if f is not None]
                if frames:
                    self._condition.notify_all()
                    return frames
                if all(s._finished() for s in self.sources.values()):
                    return []
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._condition.wait(0.25 if remaining is None else min(remaining, 0.25))

    def __iter__(self) -> Iterator[list[StreamFrame]]:
        self.start()
        while True:
            frames = self.read(timeout=0.5)
            if frames:
                yield frames
            elif all(s._finished() for s in self.sources.values()):
                for source in self.sources.values():
                    if source._thread is not None:
                        source._thread.join(1.0)
                return

    def __enter__(self) -> MultiStreamSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
