"""Launcher helpers that need no predictor: a child's error line, ports that cannot be listened on."""

from __future__ import annotations

import io
import socket

import pytest

from nexus.errors import NexusError
from nexus.serving.launcher import ensure_port_free, free_port, last_error_line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("loading\nerror: /m.onnx: no such model file\n", "error: /m.onnx: no such model file"),
        ("Traceback (most recent call last):\n  File x\nValueError: bad shape\n\n", "ValueError: bad shape"),
        (
            "INFO started\nERROR: [Errno 98] address already in use\nINFO bye\n",
            "ERROR: [Errno 98] address already in use",
        ),
        ("just a line\nand the last one\n", "and the last one"),
        ("", None),
    ],
)
@pytest.mark.parametrize("as_path", [True, False])
def test_last_error_line(tmp_path, text, expected, as_path):
    if as_path:
        log = tmp_path / "child.log"
        log.write_text(text)
        assert last_error_line(log) == expected
    else:
        assert last_error_line(io.BytesIO(text.encode())) == expected


def test_last_error_line_without_a_log(tmp_path):
    assert last_error_line(None) is None
    assert last_error_line(tmp_path / "never-written.log") is None


def test_ensure_port_free():
    ensure_port_free("127.0.0.1", free_port())  # a free port passes
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(NexusError, match=r"cannot listen on 127\.0\.0\.1:\d+ \(Address already in use\)"):
            ensure_port_free("127.0.0.1", taken.getsockname()[1])
    with pytest.raises(NexusError, match=r"within 1\.\.65535"):
        ensure_port_free("127.0.0.1", 65536)
