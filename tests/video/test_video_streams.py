"""Stream sources against real files, a real HTTP server that goes away and comes back, and a socket
that never answers."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from pathlib import Path

import pytest

from nexus.video import MultiStreamSource, StreamConfig, StreamError, StreamSource, StreamState

FAST = {"open_timeout": 1.0, "read_timeout": 1.0, "backoff_initial": 0.1, "backoff_max": 0.4}


class ThrottledVideoServer:
    """Serves one file over HTTP slowly (so a stream is in flight), and can be stopped and restarted."""

    def __init__(self, file: Path, seconds: float = 2.0) -> None:
        self.data = file.read_bytes()
        self.delay = seconds / 50
        self.port = 0
        self.alive = threading.Event()
        self.requests = 0
        self._server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> ThrottledVideoServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.send_header("Content-Length", str(len(owner.data)))
                self.end_headers()
                chunk = max(1, len(owner.data) // 50)
                for offset in range(0, len(owner.data), chunk):
                    if not owner.alive.is_set():
                        return  # the server "goes down": the connection is cut mid-stream
                    self.wfile.write(owner.data[offset : offset + chunk])
                    self.wfile.flush()
                    time.sleep(owner.delay)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self.alive.set()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.alive.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/clip.ts"


@pytest.fixture
def silent_socket():
    """A listening TCP socket that accepts connections (backlog) but never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/never.ts"
    sock.close()


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (StreamConfig(buffer="all"), 40),  # keep-all: every frame arrives
        (StreamConfig(buffer="all", max_fps=5.0), 20),  # 10 fps file capped at 5 fps
        (StreamConfig(buffer="all", max_fps=2.5), 10),
    ],
)
def test_file_as_stream_keep_all_and_fps_cap(ts_clip: Path, config: StreamConfig, expected: int) -> None:
    source = StreamSource(ts_clip, config)
    frames = list(source)
    assert len(frames) == expected
    assert [f.index for f in frames] == list(range(expected))
    assert source.state is StreamState.ENDED and not source.running
    assert frames[0].image.shape == (96, 128, 3) and all(f.connection == 1 for f in frames)


def test_latest_policy_drops_to_the_newest_frame(ts_clip: Path) -> None:
    source = StreamSource(ts_clip, StreamConfig(buffer="latest"))
    source.start()
    assert wait_for(lambda: source.state is StreamState.ENDED)
    frame = source.read(timeout=1.0)
    assert frame is not None and frame.index == 39  # a slow consumer sees the newest frame
    assert source.read(timeout=0.1) is None
    assert source.stats.frames_dropped == 39


def test_http_stream_reconnects_after_the_server_drops(ts_clip: Path) -> None:
    server = ThrottledVideoServer(ts_clip).start()
    source = StreamSource(server.url, StreamConfig(buffer="all", **FAST)).start()
    try:
        first = source.read(timeout=10)
        assert first is not None and first.connection == 1
        server.stop()  # cut the stream mid-way; new connections are refused
        assert wait_for(lambda: source.stats.failed_connects >= 1)
        assert source.state in (StreamState.BACKOFF, StreamState.CONNECTING)
        server.start()  # the same port comes back
        assert wait_for(lambda: source.stats.connections >= 2)
        later = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (later is None or later.connection < 2):
            later = source.read(timeout=1)
        assert later is not None and later.connection >= 2
        assert source.stats.backoff_waits[:2] == [0.1, 0.2]  # exponential backoff
    finally:
        source.stop()
        server.stop()
    assert source.state is StreamState.STOPPED and not source.running


def test_url_that_never_answers_backs_off_and_stops_cleanly(silent_socket: str) -> None:
    config = StreamConfig(open_timeout=0.3, read_timeout=0.3, backoff_initial=0.05, backoff_max=0.1)
    source = StreamSource(silent_socket, config).start()
    assert wait_for(lambda: source.stats.failed_connects >= 3, timeout=15)
    assert source.stats.backoff_waits[:3] == [0.05, 0.1, 0.1]  # doubles, then capped
    assert "cannot connect" in (source.stats.last_error or "") and silent_socket in source.stats.last_error
    source.stop(timeout=5)
    assert not source.running and source.state is StreamState.STOPPED
    assert source.read(timeout=0.1) is None


def test_giving_up_after_max_retries_ends_iteration(silent_socket: str) -> None:
    config = StreamConfig(open_timeout=0.3, read_timeout=0.3, backoff_initial=0.05, max_retries=1)
    source = StreamSource(silent_socket, config)
    assert list(source) == []
    assert source.state is StreamState.FAILED and source.stats.failed_connects == 2


@pytest.mark.parametrize("moment", ["before_start", "connecting", "backoff"])
def test_stop_from_any_state(moment: str) -> None:
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    port = refused.getsockname()[1]
    refused.close()  # nothing listens here: every connect is refused at once
    config = StreamConfig(open_timeout=0.3, read_timeout=0.3, backoff_initial=5.0, backoff_max=5.0)
    source = StreamSource(f"http://127.0.0.1:{port}/x.ts", config)
    if moment != "before_start":
        source.start()
        if moment == "backoff":
            assert wait_for(lambda: source.state is StreamState.BACKOFF)
    source.stop(timeout=3)
    assert not source.running and source.state is StreamState.STOPPED


def test_several_sources_keep_their_own_state(ts_clip: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.ts"
    config = StreamConfig(buffer="all", max_retries=0, backoff_initial=0.05, **{"open_timeout": 1.0})
    streams = MultiStreamSource({"cam": ts_clip, "gone": missing}, config)
    seen: dict[str, int] = {}
    for batch in streams:
        for frame in batch:
            seen[frame.source] = seen.get(frame.source, 0) + 1
    assert seen == {"cam": 40}
    assert streams.states() == {"cam": StreamState.ENDED, "gone": StreamState.FAILED}
    assert "no such file" in (streams.sources["gone"].stats.last_error or "")
    streams.stop()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"buffer": "newest"}, "buffer must be 'latest' or 'all'"),
        ({"max_fps": 0}, "max_fps must be > 0"),
        ({"backoff_initial": 2.0, "backoff_max": 1.0}, "backoff_max"),
        ({"open_timeout": 0}, "open_timeout must be > 0"),
    ],
)
def test_stream_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamConfig(**kwargs)


def test_bad_urls_are_rejected() -> None:
    with pytest.raises(StreamError, match="empty stream URL"):
        StreamSource("")
    with pytest.raises(StreamError, match="unsupported URL scheme 'ftp'"):
        StreamSource("ftp://example/x.ts")
