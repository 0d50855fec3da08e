"""Small H.264 clips for the processing and stream tests (imported by name, like service_fixtures)."""

from __future__ import annotations

import time
from pathlib import Path

import av
import cv2
import numpy as np

# Thresholds the small test detector reaches on these clips (drawn unlike its training images: its
# best score per frame is about 0.08): a few boxes per frame, within one page of /detections.
WEAK_MODEL = {
    "conf": 0.01,
    "tracker": "bytetrack",
    "tracker_options": {"high_threshold": 0.02, "low_threshold": 0.005, "new_track_threshold": 0.02},
}


def write_clip(path: Path, frames: int = 30, fps: int = 10, size: tuple[int, int] = (128, 96)) -> Path:
    """A circle moving right and a rectangle moving down on a blue background; the index up front
    (``faststart``), so a cut-off copy still declares all ``frames``."""
    width, height = size
    container = av.open(str(path), mode="w", options={"movflags": "faststart"})
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "ultrafast", "crf": "18", "g": "10"}
    for i in range(frames):
        image = np.full((height, width, 3), (150, 80, 30), np.uint8)
        cv2.circle(image, (18 + (2 * i) % (width - 36), height // 3), 16, (60, 230, 240), -1, cv2.LINE_AA)
        top = (i % (height - 36)) + 4
        cv2.rectangle(image, (width - 48, top), (width - 12, top + 28), (40, 200, 40), -1)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def wait_for(api, path: str, done, timeout: float = 60.0, role: str = "admin") -> dict:
    """Poll ``GET path`` until ``done(body)``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        body = api.ok("GET", path, role)
        if done(body):
            return body
        assert time.monotonic() < deadline, f"{path} still {body.get('status') or body}"
        time.sleep(0.05)


def wait_finished(api, video_id: int, timeout: float = 60.0) -> dict:
    """The video once its job is over (processed or failed)."""
    return wait_for(
        api, f"/videos/{video_id}", lambda v: v["status"] not in ("queued", "processing"), timeout
    )
