"""Videos generated with PyAV (libx264) for the video tests: frame ``i`` has brightness ``i * 8``."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest


def write_test_video(
    path: Path,
    frames: int = 30,
    size: tuple[int, int] = (128, 96),
    fps: int = 10,
    gop: int | None = None,
    faststart: bool = False,
    container_format: str | None = None,
) -> Path:
    """Frame ``i`` is flat grey ``min(i * 8, 255)`` with a white square moving right."""
    width, height = size
    options = {"movflags": "faststart"} if faststart else {}
    container = av.open(str(path), mode="w", format=container_format, options=options)
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {
        "crf": "10",
        "preset": "ultrafast",
        **({"g": str(gop), "keyint_min": str(gop)} if gop else {}),
    }
    for i in range(frames):
        image = np.full((height, width, 3), min(i * 8, 255), dtype=np.uint8)
        x = (i * 3) % (width - 16)
        image[10:26, x : x + 16] = 255
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.fixture(scope="session")
def video_factory():
    """``write_test_video`` for tests that need a clip of their own shape."""
    return write_test_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """30 frames, 128x96, 10 fps, a keyframe every 10 frames."""
    return write_test_video(tmp_path_factory.mktemp("clip") / "clip.mp4", gop=10)


@pytest.fixture(scope="module")
def ts_clip(tmp_path_factory) -> Path:
    """The same pictures as MPEG-TS (streamable over HTTP), 40 frames."""
    return write_test_video(
        tmp_path_factory.mktemp("ts") / "clip.ts", frames=40, gop=10, container_format="mpegts"
    )
