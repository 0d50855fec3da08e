"""Videos with a display rotation (phone recordings): metadata reports it, frames come out upright."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np
import pytest

from nexus.video.metadata import probe_video
from nexus.video.reader import VideoFileSource, upright
from nexus.video.streams import StreamSource

RED, BLUE = (0, 0, 255), (255, 0, 0)  # BGR


def rotated_clip(path: Path, matrix: tuple[int, int, int, int]) -> Path:
    """A 64x32 H.264 clip (left half red, right half blue) whose track header carries ``matrix``
    (a, b, c, d of the display matrix, 16.16 fixed point), as phones write portrait video."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
    image = np.zeros((32, 64, 3), np.uint8)
    image[:, :32], image[:, 32:] = RED, BLUE
    for _ in range(5):
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    version = data[at + 4]
    matrix_at = at + (56 if version == 1 else 44)  # after the times, track id, duration, layer, volume
    a, b, c, d = matrix
    data[matrix_at : matrix_at + 36] = struct.pack(">9i", a, b, 0, c, d, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))
    return path


ONE = 1 << 16
CASES = [
    # matrix (a, b, c, d), rotation reported, colour on top once upright, shape
    ((0, ONE, -ONE, 0), 270, RED, (64, 32, 3)),  # shown turned 90 degrees clockwise
    ((0, -ONE, ONE, 0), 90, BLUE, (64, 32, 3)),  # shown turned 90 degrees counterclockwise
    ((-ONE, 0, 0, -ONE), 180, None, (32, 64, 3)),  # upside down
]


@pytest.mark.parametrize(("matrix", "rotation", "top", "shape"), CASES)
def test_rotation_is_reported_and_frames_are_upright(tmp_path, matrix, rotation, top, shape):
    clip = rotated_clip(tmp_path / "clip.mp4", matrix)
    assert probe_video(clip).rotation == rotation
    frames = list(VideoFileSource(clip))
    assert len(frames) == 5 and frames[0].image.shape == shape
    image = frames[0].image.astype(int)
    if top is not None:
        assert np.abs(image[4, shape[1] // 2] - top).max() < 40  # the top half has this colour
    else:  # 180 degrees: the blue half is now on the left
        assert np.abs(image[shape[0] // 2, 4] - BLUE).max() < 40
    assert VideoFileSource(clip).frame_at(0.2).image.shape == shape
    assert next(iter(VideoFileSource(clip, auto_rotate=False))).image.shape == (32, 64, 3)


def test_file_streams_are_upright_too(tmp_path):
    clip = rotated_clip(tmp_path / "clip.mp4", CASES[0][0])
    with StreamSource(str(clip), name="phone") as source:
        frame = next(iter(source))
    assert frame.image.shape == (64, 32, 3)


@pytest.mark.parametrize(
    ("rotation", "shape"), [(0, (2, 4, 3)), (90, (4, 2, 3)), (-90, (4, 2, 3)), (180, (2, 4, 3))]
)
def test_upright_turns(rotation, shape):
    image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    turned = upright(image, rotation)
    assert turned.shape == shape and turned.flags.c_contiguous
    assert np.array_equal(upright(turned, -rotation), image)
