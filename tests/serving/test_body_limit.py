"""Request bodies over the limit are a 413 JSON error, on the middleware, a predictor and the router."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest
from serving_client import MODEL_NAME, AppThread, RouterThread, b64
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nexus.serving.body_limit import RequestBodyLimitMiddleware
from nexus.serving.entrypoint import main as entrypoint_main
from nexus.serving.router import CanaryRouter, RollbackPolicy, Upstream

LIMIT = 1000


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"size": len(body), "head": body[:4].decode()})


def limited_app(limit: int = LIMIT, **options) -> Starlette:
    app = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"])])
    app.add_middleware(RequestBodyLimitMiddleware, max_bytes=limit, **options)
    return app


def chunks(size: int, chunk: int = 300):
    data = b"abcd" + b"x" * (size - 4)
    for start in range(0, size, chunk):
        yield data[start : start + chunk]


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"", 200),
        (b"abcd" * 10, 200),
        (b"abcd" + b"x" * (LIMIT - 4), 200),  # exactly the limit
        (b"abcd" + b"x" * LIMIT, 413),  # declared Content-Length over the limit
        ("chunked", 200),  # streamed without a length, under the limit
        ("chunked-over", 413),  # streamed without a length, past the limit
    ],
)
def test_the_middleware_passes_bodies_up_to_the_limit_and_refuses_larger_ones(content, status):
    size = {"chunked": 900, "chunked-over": 2500}.get(content) if isinstance(content, str) else None

    async def stream():
        for piece in chunks(size):
            yield piece

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=limited_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/echo", content=stream() if size else content)

    response = asyncio.run(post())
    if size:
        assert "content-length" not in response.request.headers
    assert response.status_code == status
    if status == 200:
        expected = size if size else len(content)
        assert response.json()["size"] == expected  # the body arrives whole, in order
        assert response.json()["head"] == ("abcd" if expected else "")
    else:
        assert response.headers["content-type"] == "application/json"
        assert f"exceeds the limit of {LIMIT} bytes" in response.json()["error"]
        assert "--max-request-bytes" in response.json()["error"]


@pytest.mark.parametrize(
    ("options", "word"),
    [({"max_bytes": 0}, "max_bytes must be at least 1"), ({"body_idle_timeout_s": 0}, "above 0")],
)
def test_bad_limits_are_refused(options, word):
    with pytest.raises(ValueError, match=word):
        RequestBodyLimitMiddleware(limited_app(), **options)


@pytest.mark.parametrize(
    ("pauses_s", "status"),
    [
        ([0.05] * 8, 200),  # slow but steady: every pause under the timeout
        ([0.05, 1.5], 408),  # stalls after its second chunk
        ([1.5], 408),  # sends its headers, then nothing
    ],
)
def test_a_body_that_stalls_gets_a_408_and_a_steady_one_arrives(pauses_s, status):
    """A client that stops mid-body is answered once the idle timeout passes, not held for ever."""
    with (
        AppThread(limited_app(body_idle_timeout_s=0.5)) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock,
    ):
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 900\r\n\r\n",
        )
        sent = 0
        for pause in pauses_s:
            time.sleep(pause)
            if status == 408 and pause > 1:
                break
            sock.sendall(b"abcd" if sent == 0 else b"x" * 4)
            sent += 4
        else:
            sock.sendall(b"y" * (900 - sent))
        reply = _read_reply(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert int(head.split()[1]) == status, reply
    if status == 408:
        assert f"no bytes for 0.5 s after {sent} bytes" in json.loads(body)["error"]
    else:
        assert json.loads(body) == {"size": 900, "head": "abcd"}


def declare_too_much(url: str, path: str, size: int) -> tuple[int, dict]:
    """POST headers declaring ``size`` bytes and no body: the server must answer before reading any."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
        )
        reply = _read_reply(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _read_reply(sock: socket.socket) -> bytes:
    reply = b""
    while b"\r\n\r\n" not in reply or len(reply.partition(b"\r\n\r\n")[2]) < _length(reply):
        data = sock.recv(65536)
        if not data:
            break
        reply += data
    return reply


def _length(reply: bytes) -> int:
    for line in reply.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


@pytest.fixture(scope="module")
def small_limit_predictor(detect_onnx, predictor_logs):
    from nexus.serving.launcher import PredictorProcess

    with PredictorProcess.start(
        detect_onnx, version="v1", max_request_bytes=200_000, log_path=predictor_logs / "limit.log"
    ) as process:
        yield process


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/models/{MODEL_NAME}:predict",
        f"/v2/models/{MODEL_NAME}/infer",
        f"/v2/models/{MODEL_NAME}/versions/v1/infer",  # the app's own route, not the fast path
    ],
)
def test_a_predictor_refuses_a_body_over_its_limit_and_keeps_serving(small_limit_predictor, jpegs, path):
    status, body = declare_too_much(small_limit_predictor.url, path, 10_000_000)
    assert status == 413
    assert "request body of 10000000 bytes exceeds the limit of 200000 bytes" in body["error"]
    ok = httpx.post(
        f"{small_limit_predictor.url}/v1/models/{MODEL_NAME}:predict",
        json={"instances": [{"b64": b64(jpegs[0])}]},
        timeout=30,
    )
    assert ok.status_code == 200 and ok.json()["predictions"][0]["detections"] is not None


def test_the_default_limit_leaves_ordinary_batches_alone(predictor, jpegs):
    body = {"instances": [{"b64": b64(jpeg)} for jpeg in jpegs]}
    response = httpx.post(f"{predictor.url}/v1/models/{MODEL_NAME}:predict", json=body, timeout=60)
    assert response.status_code == 200 and len(response.json()["predictions"]) == len(jpegs)
    status, error = declare_too_much(predictor.url, f"/v1/models/{MODEL_NAME}:predict", 200 * 2**20)
    assert status == 413 and f"limit of {128 * 2**20} bytes" in error["error"]


def test_the_router_refuses_a_body_over_its_limit_before_proxying(predictor, challenger, jpegs):
    router = CanaryRouter(
        Upstream("v1", predictor.url),
        Upstream("v2", challenger.url),
        percent=50,
        policy=RollbackPolicy(False),
    )
    with RouterThread(router, max_request_bytes=100_000) as running:
        status, body = declare_too_much(running.url, f"/v1/models/{MODEL_NAME}:predict", 5_000_000)
        assert status == 413 and "limit of 100000 bytes" in body["error"]
        ok = httpx.post(
            f"{running.url}/v1/models/{MODEL_NAME}:predict",
            json={"instances": [{"b64": b64(jpegs[0])}]},
            timeout=30,
        )
        assert ok.status_code == 200
    stats = router.status()["stats"]
    assert sum(version["requests"] for version in stats.values()) == 1  # the 413 never reached a version


def test_the_entry_point_refuses_a_limit_below_one_byte(capsys):
    with pytest.raises(SystemExit) as exit_info:
        entrypoint_main(["--model", "m.onnx", "--max-request-bytes", "0"])
    assert exit_info.value.code == 2
    assert "--max-request-bytes must be at least 1" in capsys.readouterr().err
