"""Benchmark: decoding 720p H.264 to BGR arrays, nexus ``VideoFileSource`` vs OpenCV ``VideoCapture``.

Generates a 1280x720 H.264 clip with PyAV (libx264), then decodes it to BGR arrays several ways,
alternating the order over rounds and keeping each one's best round:

- ``cv2.VideoCapture.read()`` (the peer),
- ``nexus.video.VideoFileSource`` (yuv420p decode + ``cv2.cvtColor``, FFmpeg default threading),
- ``VideoFileSource(thread_type="AUTO")``,
- PyAV ``to_ndarray("bgr24")`` (the naive way, for reference).

Usage:
    .venv/bin/python benchmarks/video_decode.py               # 300 frames, 3 rounds
    .venv/bin/python benchmarks/video_decode.py --frames 600 --rounds 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

from nexus.video import VideoFileSource, VideoSink


def make_clip(path: Path, frames: int) -> Path:
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    background = cv2.GaussianBlur(background, (31, 31), 0)
    with VideoSink(path, fps=30, crf=23, preset="veryfast") as sink:
        for i in range(frames):
            image = np.roll(background, i * 4, axis=1)
            cv2.circle(image, (100 + (i * 7) % 1080, 360), 80, (255, 255, 255), -1)
            sink.write(image)
    return path


def opencv(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while True:
        ok, _frame = capture.read()
        if not ok:
            break
        count += 1
    capture.release()
    return count


def nexus_default(path: Path) -> int:
    return sum(1 for _ in VideoFileSource(path))


def nexus_threads(path: Path) -> int:
    return sum(1 for _ in VideoFileSource(path, thread_type="AUTO"))


def pyav_bgr24(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for frame in container.decode(video=0) if frame.to_ndarray(format="bgr24") is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    contenders: dict[str, Callable[[Path], int]] = {
        "OpenCV VideoCapture": opencv,
        "nexus VideoFileSource": nexus_default,
        "nexus VideoFileSource AUTO threads": nexus_threads,
        "PyAV to_ndarray(bgr24)": pyav_bgr24,
    }
    with tempfile.TemporaryDirectory() as folder:
        clip = make_clip(Path(folder) / "clip720.mp4", args.frames)
        best: dict[str, float] = {}
        for round_index in range(args.rounds):
            order = list(contenders.items())
            if round_index % 2:
                order.reverse()
            for name, decode in order:
                start = time.perf_counter()
                count = decode(clip)
                fps = count / (time.perf_counter() - start)
                if count != args.frames:
                    raise SystemExit(f"{name} decoded {count} frames, expected {args.frames}")
                best[name] = max(best.get(name, 0.0), fps)
    for name, fps in best.items():
        print(f"{name:<36} {fps:8.0f} frames/s")
    ours = max(best["nexus VideoFileSource"], best["nexus VideoFileSource AUTO threads"])
    peer = best["OpenCV VideoCapture"]
    print(f"nexus default / OpenCV: x{best['nexus VideoFileSource'] / peer:.2f}")
    print(f"nexus best / OpenCV:    x{ours / peer:.2f} ({'at least as fast' if ours >= peer else 'SLOWER'})")


if __name__ == "__main__":
    main()
