"""Start predictor processes on free localhost ports and wait until they are ready.

Used by ``nexus serve`` (champion + challenger) and by the tests.

Example:
    >>> with PredictorProcess.start("best.onnx", version="v1") as predictor:  # doctest: +SKIP
    ...     httpx.get(f"{predictor.url}/v2/health/ready")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import httpx

from nexus.errors import NexusError
from nexus.serving.config import DEFAULT_MODEL_NAME


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_port_free(host: str, port: int) -> None:
    """Fail with a clear error when ``port`` is not a TCP port or something already listens on it.

    Raises:
        NexusError: the port is outside 1..65535 or taken.
    """
    if not 1 <= port <= 65535:
        raise NexusError(f"--port must be within 1..65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as error:
            raise NexusError(
                f"cannot listen on {host}:{port} ({error.strerror}); stop what uses it or pick another --port"
            ) from None


def last_error_line(log: Path | BinaryIO | None) -> str | None:
    """The last line of a child's log that reads like its error (``error: ...``, an exception), else its
    last line; ``None`` without a log."""
    if log is None:
        return None
    if isinstance(log, Path):
        if not log.is_file():
            return None
        data = log.read_bytes()[-8192:]
    else:
        log.seek(0, os.SEEK_END)
        log.seek(max(0, log.tell() - 8192))
        data = log.read()
    lines = [line.strip() for line in data.decode(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.lower().startswith("error:") or "Error:" in line or "ERROR" in line:
            return line
    return lines[-1] if lines else None


def wait_ready(
    url: str,
    model_name: str,
    timeout_s: float,
    process: subprocess.Popen | None = None,
    log: Path | BinaryIO | None = None,
) -> None:
    """Poll ``/v2/models/{name}/ready`` until it answers 200; fail fast if the process died, quoting
    the error line of its ``log`` when there is one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            reason = last_error_line(log)
            raise NexusError(
                f"the predictor at {url} exited with status {process.returncode} while starting"
                + (f": {reason}" if reason else "")
            )
        try:
            if httpx.get(f"{url}/v2/models/{model_name}/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise NexusError(f"the predictor at {url} was not ready within {timeout_s:.0f} s")


@dataclass
class PredictorProcess:
    """A predictor (``python -m nexus.serving.entrypoint``) running in a child process."""

    process: subprocess.Popen
    url: str
    model_name: str
    version: str
    log_path: Path | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        model: str | Path | None,
        version: str = "v1",
        model_name: str = DEFAULT_MODEL_NAME,
        port: int | None = None,
        device: str = "cpu",
        max_batch_size: int = 8,
        max_delay_ms: float = 4.0,
        batch_shards: int | None = None,
        max_request_bytes: int | None = None,
        log_path: Path | None = None,
        timeout_s: float = 60.0,
        extra_args: list[str] | None = None,
    ) -> PredictorProcess:
        port = port or free_port()
        command = [
            sys.executable, "-m", "nexus.serving.entrypoint",
            *(["--model", str(model)] if model else []),
            "--name", model_name, "--port", str(port), "--device", device,
            "--version", version, "--max-batch-size", str(max_batch_size),
            "--max-delay-ms", str(max_delay_ms),
            *(["--batch-shards", str(batch_shards)] if batch_shards is not None else []),
            *(["--max-request-bytes", str(max_request_bytes)] if max_request_bytes is not None else []),
            *(extra_args or []),
        ]  # fmt: skip
        env = dict(os.environ, ORT_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1")
        # Without a log file the child still writes to an unnamed one, so a failed start can say why
        # (the predictor logs little once it serves: access logs are off).
        log = open(log_path, "ab") if log_path else tempfile.TemporaryFile()  # noqa: SIM115
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        predictor = cls(process, url, model_name, version, log_path)
        try:
            wait_ready(url, model_name, timeout_s, process, log_path or log)
        except BaseException:
            predictor.stop()
            raise
        finally:
            log.close()  # the child holds its own descriptor
        return predictor

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> PredictorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
