"""Video file metadata: duration, fps, frame counts, resolution, codec and rotation (PyAV)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av

from nexus.video.errors import VideoError

FrameCountMode = Literal["demux", "decode", "header"]


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as measured rather than only as declared.

    Attributes:
        path: the file.
        width: frame width in pixels (coded, before rotation).
        height: frame height in pixels.
        fps: average frame rate (frames per second).
        frame_count: frames actually present (counted by demuxing or decoding, see ``probe_video``).
        declared_frame_count: frames the container header promises (0 when it says nothing).
        duration: seconds, from the counted frames and fps when possible, else from the container.
        codec: decoder name, e.g. ``"h264"``.
        pix_fmt: pixel format of the decoded frames, e.g. ``"yuv420p"``.
        rotation: display rotation in degrees (0, 90, 180, 270) from the display matrix.
        bit_rate: container bit rate in bits/s (0 when unknown).
        container: container format name, e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``.

    Example:
        >>> info = probe_video("clip.mp4")  # doctest: +SKIP
        >>> info.width, info.height, round(info.fps), info.frame_count  # doctest: +SKIP
        (1280, 720, 30, 150)
    """

    path: str
    width: int
    height: int
    fps: float
    frame_count: int
    declared_frame_count: int
    duration: float
    codec: str
    pix_fmt: str | None
    rotation: int
    bit_rate: int
    container: str

    @property
    def truncated(self) -> bool:
        """True when the header promises more frames than the file holds."""
        return self.declared_frame_count > self.frame_count

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with ``truncated`` added."""
        return {**asdict(self), "truncated": self.truncated}


def open_container(path: str | Path, **kwargs: Any) -> av.container.InputContainer:
    """Open ``path`` for reading, turning every failure into a one-line ``VideoError``.

    Example:
        >>> container = open_container("clip.mp4")  # doctest: +SKIP
    """
    file = Path(path)
    if not file.exists():
        raise VideoError("no such file", path=file)
    if file.is_dir():
        raise VideoError("is a folder, expected a video file", path=file)
    if file.stat().st_size == 0:
        raise VideoError("file is empty (0 bytes), not a video", path=file)
    try:
        container = av.open(str(file), mode="r", **kwargs)
    except av.FFmpegError as error:
        raise VideoError(f"not a readable video ({_reason(error)})", path=file) from error
    if not container.streams.video:
        container.close()
        raise VideoError("has no video stream", path=file)
    context = container.streams.video[0].codec_context
    if not context.width or not context.height:  # FFmpeg found no frame it could decode to size it
        container.close()
        raise VideoError("not a decodable video (its video stream has no frame size)", path=file)
    return container


def _reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text.split(";")[0].strip() or type(error).__name__


def stream_fps(stream: av.video.stream.VideoStream) -> float:
    """Average frame rate of a video stream; falls back to the guessed / base rate, then 0."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(Fraction(rate))
    return 0.0


def _rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    rotate = stream.metadata.get("rotate")
    if rotate is not None:
        return int(float(rotate)) % 360
    try:
        for frame in container.decode(stream):
            return round(frame.rotation) % 360
    except av.FFmpegError:
        return 0
    return 0


def probe_video(path: str | Path, count: FrameCountMode = "demux") -> VideoInfo:
    """Read a video file's metadata and count its frames.

    Args:
        path: the video file.
        count: how to count frames: ``"demux"`` (read packets, fast, what the file holds),
            ``"decode"`` (decode every frame, exact even for damaged files, slower) or ``"header"``
            (trust the container; fastest, wrong for truncated files).

    Returns:
        A ``VideoInfo``; ``info.truncated`` says whether fewer frames exist than promised.

    Raises:
        VideoError: the file is missing, empty, not a video, or has no video stream.

    Example:
        >>> probe_video("clip.mp4", count="decode").frame_count  # doctest: +SKIP
        150
    """
    if count not in ("demux", "decode", "header"):
        raise ValueError(f"count must be 'demux', 'decode' or 'header', got {count!r}")
    container = open_container(path)
    try:
        stream = container.streams.video[0]
        fps = stream_fps(stream)
        declared = int(stream.frames or 0)
        rotation = _rotation(container, stream)
        container.seek(0)
        frames = declared if count == "header" else _count_frames(container, stream, count, path)
        if frames and fps:
            duration = frames / fps
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        codec_context = stream.codec_context
        return VideoInfo(
            path=str(path),
            width=int(codec_context.width),
            height=int(codec_context.height),
            fps=fps,
            frame_count=frames,
            declared_frame_count=declared,
            duration=float(duration),
            codec=codec_context.name,
            pix_fmt=codec_context.pix_fmt,
            rotation=rotation,
            bit_rate=int(container.bit_rate or 0),
            container=container.format.name,
        )
    finally:
        container.close()


def _count_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    mode: FrameCountMode,
    path: str | Path,
) -> int:
    frames = 0
    try:
        if mode == "demux":
            for packet in container.demux(stream):
                if packet.size:
                    frames += 1
        else:
            for _ in container.decode(stream):
                frames += 1
    except av.FFmpegError:
        # A damaged tail: count what could be read; ``truncated`` tells the caller.
        pass
    return frames
