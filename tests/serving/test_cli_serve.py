"""``nexus serve MODEL --canary MODEL2``: champion, challenger and router as real processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from serving_client import LOW_CONF, MODEL_NAME, b64, boxes_of

from nexus.cli.main import main as nexus_main
from nexus.serving.launcher import free_port, wait_ready


def _interrupt(process: subprocess.Popen) -> None:
    """Ctrl-C, as a user stops ``nexus serve``; killed if it has not exited within 30 s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_serve_canary_end_to_end(detect_onnx, jpegs, tmp_path):
    port = free_port()
    router = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "nexus.cli.main", "serve", str(detect_onnx), "--port", str(port),
        "--canary", str(detect_onnx), "--canary-percent", "50", "--log-dir", str(tmp_path),
        "--full-decode",
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
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(  # an upgrade request is answered, not left hanging
                f"POST /v1/models/{MODEL_NAME}:predict HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                "Upgrade: websocket\r\nContent-Length: 2\r\n\r\n{}".encode()
            )
            assert connection.recv(4096).startswith(b"HTTP/1.1 4")
        for version in ("v1", "v2"):  # both predictors got --full-decode
            metadata = httpx.get(f"{router}/v2/models/{MODEL_NAME}/versions/{version}").json()
            assert metadata["parameters"]["scaled_jpeg_decode"] is False, metadata
        assert nexus_main(["deploy", "promote", "--router", router]) == 0
        status = httpx.get(f"{router}/admin/status").json()
        assert status["champion"]["version"] == "v2"
    finally:
        _interrupt(process)
        log.close()
    assert process.returncode is not None
    # the predictors went down with the router
    assert "predictor-v1.log" in os.listdir(tmp_path)


def test_serve_rejects_bad_settings(detect_onnx, capsys):
    argv = ["serve", str(detect_onnx), "--canary", str(detect_onnx), "--port", str(free_port())]
    assert nexus_main([*argv, "--canary-percent", "150"]) == 2
    assert "--canary-percent must be within [0, 100], got 150" in capsys.readouterr().err
    assert nexus_main([*argv, "--canary-version", "v1"]) == 2
    assert "--version and --canary-version must differ" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["0", "70000", "-1"])
def test_serve_refuses_a_port_out_of_range(detect_onnx, capsys, port):
    assert nexus_main(["serve", str(detect_onnx), "--port", port]) == 2
    assert f"--port must be within 1..65535, got {port}" in capsys.readouterr().err


def test_serve_refuses_a_body_limit_below_one_byte(detect_onnx, capsys):
    assert nexus_main(["serve", str(detect_onnx), "--max-request-bytes", "0"]) == 2
    assert "--max-request-bytes" in capsys.readouterr().err


@pytest.mark.parametrize("canary", [False, True])
def test_serve_refuses_a_port_in_use_before_loading_anything(detect_onnx, capsys, canary):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["serve", str(detect_onnx), "--port", str(port)]
        assert nexus_main([*argv, *(["--canary", str(detect_onnx)] if canary else [])]) == 2
    error = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in error and "pick another --port" in error


@pytest.mark.parametrize("missing", ["champion", "challenger"])
def test_serve_names_why_a_predictor_did_not_start(detect_onnx, tmp_path, capsys, missing):
    absent = tmp_path / "absent.onnx"
    champion, challenger = (absent, detect_onnx) if missing == "champion" else (detect_onnx, absent)
    argv = ["serve", str(champion), "--canary", str(challenger), "--port", str(free_port())]
    assert nexus_main(argv) == 2
    error = capsys.readouterr().err
    assert "exited with status 2 while starting" in error and f"{absent}: no such model file" in error


def test_serve_split_runs_transformer_and_tensor_predictor_and_stops_both(
    detect_onnx, predictor, jpegs, tmp_path
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "nexus.cli.main",
        "serve",
        str(detect_onnx),
        "--port",
        str(port),
        "--split",
        "--full-decode",
    ]
    log_path = tmp_path / "split.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        wait_ready(url, MODEL_NAME, 120, process)
        body = {"instances": [{"b64": b64(jpegs[0])}], "parameters": LOW_CONF}
        response = httpx.post(f"{url}/v1/models/{MODEL_NAME}:predict", json=body, timeout=60)
        assert response.status_code == 200, response.text
        direct = httpx.post(f"{predictor.url}/v1/models/{MODEL_NAME}:predict", json=body, timeout=60).json()
        assert boxes_of(response.json()["predictions"][0]) == boxes_of(direct["predictions"][0])
        metadata = httpx.get(f"{url}/v2/models/{MODEL_NAME}").json()
        assert metadata["parameters"]["scaled_jpeg_decode"] is False
        found = re.search(r"tensor predictor at (http://127\.0\.0\.1:\d+)", log_path.read_text())
        assert found, log_path.read_text()[-2000:]
        tensor_predictor = found.group(1)
        assert httpx.get(f"{tensor_predictor}/v2/models/{MODEL_NAME}/ready").status_code == 200
    finally:
        _interrupt(process)
    with pytest.raises(httpx.HTTPError):  # the tensor predictor went down with the transformer
        httpx.get(f"{tensor_predictor}/v2/health/live", timeout=2)


def test_serve_split_refuses_a_local_canary(detect_onnx, capsys):
    assert nexus_main(["serve", str(detect_onnx), "--split", "--canary", str(detect_onnx)]) == 2
    assert "--split and --canary do not combine locally" in capsys.readouterr().err
