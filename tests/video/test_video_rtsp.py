"""Live RTSP: a real RTSP server (rtsp-server-perl), a camera publishing to it, our stream reader
pulling from it — and reconnecting when the camera drops and comes back."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import av
import numpy as np
import pytest

from nexus.video.streams import StreamConfig, StreamSource, StreamState


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def rtsp_server(tmp_path) -> Iterator[tuple[str, str]]:
    """(publish URL, read URL) of a fresh server; scripts/install-services.sh installs it."""
    binary = shutil.which("rtsp-server-perl")
    assert binary, "rtsp-server-perl is missing: run scripts/install-services.sh"
    client_port, source_port = free_port(), free_port()
    process = subprocess.Popen(
        [binary, "--clientport", str(client_port), "--serverport", str(source_port),
         "--client_listen_address", "127.0.0.1", "--source_listen_address", "127.0.0.1", "--loglevel", "1"],
        stdout=(tmp_path / "rtsp.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", source_port)) == 0:
                break
        time.sleep(0.1)
    yield f"rtsp://127.0.0.1:{source_port}/cam", f"rtsp://127.0.0.1:{client_port}/cam"
    process.terminate()
    process.wait(10)


class Camera(threading.Thread):
    """Publishes a moving bar (H.264 over RTSP/UDP, 10 fps) until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.halt = threading.Event()

    def run(self) -> None:
        out = av.open(self.url, "w", format="rtsp", options={"rtsp_transport": "udp"})
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        stream.options = {"tune": "zerolatency", "g": "10"}
        index = 0
        while not self.halt.is_set():
            image = np.zeros((96, 128, 3), np.uint8)
            image[:, (index * 4) % 118 : (index * 4) % 118 + 10] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
            index += 1
            time.sleep(0.1)
        out.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(10)


def read(source: StreamSource, count: int, timeout: float = 30.0) -> list:
    frames, deadline = [], time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        frame = source.read(timeout=0.5)
        if frame is not None:
            frames.append(frame)
    return frames


def test_frames_from_a_live_rtsp_camera_and_a_reconnect_after_it_drops(rtsp_server):
    publish, url = rtsp_server
    camera = Camera(publish)
    camera.start()
    time.sleep(1.0)  # the server learns the stream from the camera's ANNOUNCE
    config = StreamConfig(
        rtsp_transport="udp", read_timeout=2.0, open_timeout=5.0, backoff_initial=0.2, backoff_max=1.0
    )
    source = StreamSource(url, config, name="cam")
    source.start()
    try:
        first = read(source, 5)
        assert len(first) == 5 and first[0].image.shape == (96, 128, 3)
        assert {frame.connection for frame in first} == {1}
        camera.stop()  # the camera drops
        time.sleep(3.0)
        camera = Camera(publish)  # and comes back
        camera.start()
        later = [frame for frame in read(source, 40) if frame.connection > 1]
        assert later, f"no frames after the camera came back: {source.stats}"
        assert source.stats.connections >= 2
    finally:
        source.stop()
        camera.stop()
    assert source.stats.state == StreamState.STOPPED


def test_rtsp_transport_is_validated():
    with pytest.raises(ValueError, match="rtsp_transport must be 'tcp' or 'udp'"):
        StreamConfig(rtsp_transport="http")
