"""Write BGR frames to an H.264 video file with PyAV's bundled libx264."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from nexus.video.errors import VideoError


class VideoSink:
    """An H.264 (``libx264``, ``yuv420p``) video file written frame by frame.

    The size comes from the first frame; odd sizes are padded by one pixel (yuv420p needs even sizes).

    Args:
        path: output file (``.mp4``, ``.mkv``, ``.mov``).
        fps: frames per second.
        crf: x264 quality, 0 (lossless) to 51; 23 is x264's default.
        preset: x264 speed preset, e.g. ``"veryfast"``.

    Example:
        >>> with VideoSink("out.mp4", fps=30) as sink:  # doctest: +SKIP
        ...     for frame in frames:
        ...         sink.write(frame)
    """

    def __init__(self, path: str | Path, fps: float, *, crf: int = 23, preset: str = "veryfast") -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0 frames per second, got {fps}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in 0..51 (lower is better quality), got {crf}")
        self.path = Path(path)
        self.fps = fps
        self.crf = crf
        self.preset = preset
        self.frames_written = 0
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._size: tuple[int, int] | None = None

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        hint = "name an .mp4, .mkv or .mov file"
        try:
            container = av.open(str(self.path), mode="w")
        except (av.FFmpegError, ValueError) as error:  # ValueError: no container for the file's suffix
            raise VideoError(f"cannot create video file ({error}); {hint}", path=self.path) from error
        rate = Fraction(self.fps).limit_denominator(1001)
        try:
            stream = container.add_stream("libx264", rate=rate)
        except ValueError as error:  # e.g. .jpg: an image sequence, not a video container
            container.close()
            raise VideoError(f"cannot hold an H.264 video ({error}); {hint}", path=self.path) from error
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        self._container, self._stream, self._size = container, stream, (width, height)

    def write(self, image: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 BGR frame; every frame must have the first frame's size."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 BGR image, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        if self._container is None:
            self._open(width, height)
        if self._size != (width, height):
            raise ValueError(f"frame size {width}x{height} differs from the first frame's {self._size}")
        if width % 2 or height % 2:
            image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        assert self._container is not None and self._stream is not None
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and close the file (idempotent)."""
        if self._container is None or self._stream is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
