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
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from nexus.errors import NexusError
from nexus.serving.config import DEFAULT_MODEL_NAME


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, model_name: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    """Poll ``/v2/models/{name}/ready`` until it answers 200; fail fast if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NexusError(f"the predictor at {url} exited with status {process.returncode} while starting")
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
            *(extra_args or []),
        ]  # fmt: skip
        env = dict(os.environ, ORT_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1")
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        predictor = cls(process, url, model_name, version, log_path)
        try:
            wait_ready(url, model_name, timeout_s, process)
        except BaseException:
            predictor.stop()
            raise
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
