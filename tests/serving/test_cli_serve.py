"""``nexus serve MODEL --canary MODEL2``: champion, challenger and router as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
from serving_client import MODEL_NAME, b64

from nexus.cli.main import main as nexus_main
from nexus.serving.launcher import free_port


def test_serve_canary_end_to_end(detect_onnx, jpegs, tmp_path):
    port = free_port()
    router = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "nexus.cli.main", "serve", str(detect_onnx), "--port", str(port),
        "--canary", str(detect_onnx), "--canary-percent", "50", "--log-dir", str(tmp_path),
    ]  # fmt: skip
    log = open(tmp_path / "router.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "router.log").read_text()[-2000:]
            try:
                if httpx.get(f"{router}/v2/models/{MODEL_NAME}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "canary did not come up"
            time.sleep(0.2)
        versions = set()
        for user in range(10):
            response = httpx.post(
                f"{router}/v1/models/{MODEL_NAME}:predict",
                json={"instances": [{"b64": b64(jpegs[0])}]},
                headers={"X-User-Id": f"user-{user}"},
                timeout=30,
            )
            assert response.status_code == 200
            versions.add(response.json()["model_version"])
        assert versions == {"v1", "v2"}
        assert nexus_main(["deploy", "promote", "--router", router]) == 0
        status = httpx.get(f"{router}/admin/status").json()
        assert status["champion"]["version"] == "v2"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    assert process.returncode is not None
    # the predictors went down with the router
    assert "predictor-v1.log" in os.listdir(tmp_path)


def test_serve_rejects_bad_settings(detect_onnx):
    argv = ["serve", str(detect_onnx), "--canary", str(detect_onnx)]
    assert nexus_main([*argv, "--canary-percent", "150"]) == 2
    assert nexus_main([*argv, "--canary-version", "v1"]) == 2
