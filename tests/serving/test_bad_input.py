"""Bad input and faults answer 4xx with a JSON error naming the problem, never 500, and never stall
the other requests of the same batch."""

from __future__ import annotations

import asyncio
import struct
import zlib

import cv2
import httpx
import numpy as np
import pytest
from serving_client import MODEL_NAME, b64, bytes_tensor, v1, v2_binary, v2_json


def png_bomb(width: int = 9_000, height: int = 9_000) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (81 M by default, over our 64 M cap)."""
    _, png = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))
    data = bytearray(png.tobytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def bad_images(jpeg: bytes) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, a word the error must contain)."""
    return {
        "empty": (b"", "empty"),
        "corrupt": (b"\xff\xd8\xff" + bytes(range(256)) * 4, "decodable"),
        "truncated": (jpeg[:40], "decodable"),
        "text": (b"hello, this is not an image", "decodable"),
        "bomb": (png_bomb(), "exceeds"),
    }


@pytest.mark.parametrize("kind", ["empty", "corrupt", "truncated", "text", "bomb"])
@pytest.mark.parametrize("transport", ["v1", "v2-json", "v2-binary"])
def test_bad_image_bytes_are_4xx(predictor, jpegs, kind, transport):
    data, word = bad_images(jpegs[0])[kind]
    if transport == "v1":
        response = v1(predictor.url, [{"b64": b64(data)}])
    elif transport == "v2-json":
        tensor = {"name": "images", "shape": [1], "datatype": "BYTES", "data": [b64(data)]}
        response = v2_json(predictor.url, [tensor])
    else:
        response = v2_binary(
            predictor.url, {"name": "images", "shape": [1], "datatype": "BYTES"}, bytes_tensor([data])
        )
    assert 400 <= response.status_code < 500, response.text
    assert word in response.json()["error"]


@pytest.mark.parametrize(
    ("name", "send", "word"),
    [
        (
            "no instances",
            lambda u: httpx.post(f"{u}/v1/models/{MODEL_NAME}:predict", json={"x": 1}),
            "instances",
        ),
        (
            "instances not a list",
            lambda u: httpx.post(f"{u}/v1/models/{MODEL_NAME}:predict", json={"instances": 3}),
            "list",
        ),
        ("bad base64", lambda u: v1(u, [{"b64": "***"}]), "base64"),
        ("instance not an image", lambda u: v1(u, [{"foo": 1}]), "image_bytes"),
        (
            "text/plain body",
            lambda u: httpx.post(
                f"{u}/v1/models/{MODEL_NAME}:predict", content=b"hi", headers={"content-type": "text/plain"}
            ),
            "JSON",
        ),
        (
            "not JSON",
            lambda u: httpx.post(
                f"{u}/v1/models/{MODEL_NAME}:predict",
                content=b"{nope",
                headers={"content-type": "application/json"},
            ),
            "format",
        ),
        ("confidence too high", lambda u: v1(u, [{"b64": "AA=="}], {"confidence": 1.5}), "conf_threshold"),
        ("iou negative", lambda u: v1(u, [{"b64": "AA=="}], {"iou": -0.1}), "iou_threshold"),
        ("max_det zero", lambda u: v1(u, [{"b64": "AA=="}], {"max_det": 0}), "max_detections"),
        ("classes not ints", lambda u: v1(u, [{"b64": "AA=="}], {"classes": ["a"]}), "parameters"),
        (
            "unknown model",
            lambda u: httpx.post(f"{u}/v1/models/nope:predict", json={"instances": []}),
            "nope",
        ),
        ("unknown model v2", lambda u: httpx.post(f"{u}/v2/models/nope/infer", json={"inputs": []}), "nope"),
        (
            "fp32 tensor",
            lambda u: v2_json(
                u, [{"name": "x", "shape": [1, 2, 2, 3], "datatype": "FP32", "data": [0.0] * 12}]
            ),
            "FP32",
        ),
        (
            "uint8 two channels",
            lambda u: v2_json(
                u, [{"name": "x", "shape": [1, 2, 2, 2], "datatype": "UINT8", "data": [0] * 8}]
            ),
            "[N,H,W,3]",
        ),
        (
            "uint8 shape mismatch",
            lambda u: v2_json(
                u, [{"name": "x", "shape": [1, 4, 4, 3], "datatype": "UINT8", "data": [0] * 5}]
            ),
            "shape",
        ),
        (
            "two inputs",
            lambda u: v2_json(u, [{"name": "a", "shape": [1], "datatype": "BYTES", "data": ["AA=="]}] * 2),
            "exactly one",
        ),
        ("parameters a string", lambda u: v1(u, [{"b64": "AA=="}], "confidence=0.4"), "object"),
        ("max_det a fraction", lambda u: v1(u, [{"b64": "AA=="}], {"max_det": 2.5}), "whole number"),
        ("negative class id", lambda u: v1(u, [{"b64": "AA=="}], {"classes": [-1]}), ">= 0"),
        (
            "class id the model lacks",
            lambda u: v1(u, [{"b64": "AA=="}], {"classes": [1, 99]}),
            "'classes' [99] are not classes of this model (it has 3: ids 0..2)",
        ),
        ("agnostic not a flag", lambda u: v1(u, [{"b64": "AA=="}], {"agnostic": "yes"}), "true or false"),
        (
            "uint8 value out of range",
            lambda u: v2_json(
                u, [{"name": "x", "shape": [1, 2, 2, 3], "datatype": "UINT8", "data": [300] * 12}]
            ),
            "0..255",
        ),
        (
            "unknown datatype",
            lambda u: v2_json(u, [{"name": "x", "shape": [1], "datatype": "WHAT", "data": ["AA=="]}]),
            "WHAT is not supported",
        ),
        (
            "binary BYTES length past the end",
            lambda u: v2_binary(
                u, {"name": "images", "shape": [1], "datatype": "BYTES"}, struct.pack("<I", 1 << 30) + b"ab"
            ),
            "4-byte little-endian length",
        ),
        (
            "unknown version",
            lambda u: httpx.post(
                f"{u}/v2/models/{MODEL_NAME}/versions/v9/infer",
                json={"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["AA=="]}]},
            ),
            "no version 'v9'",
        ),
        (
            "binary header too long",
            lambda u: httpx.post(
                f"{u}/v2/models/{MODEL_NAME}/infer",
                content=b"{}",
                headers={"Inference-Header-Content-Length": "99"},
            ),
            "",
        ),
    ],
)
def test_bad_requests_are_4xx_with_a_json_error(predictor, name, send, word):
    response = send(predictor.url)
    assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
    error = response.json()
    message = error.get("error") or error.get("detail") or ""
    assert word in str(message), (name, message)


def test_bad_images_fail_alone_within_a_batch(predictor, jpegs):
    """Good and bad requests sent together: every good one succeeds, every bad one gets a 400."""
    bad = list(bad_images(jpegs[0]).values())

    async def fire() -> list[tuple[bool, httpx.Response]]:
        async with httpx.AsyncClient(timeout=60) as client:
            jobs = []
            for index in range(24):
                is_bad = index % 3 == 0
                data = bad[index % len(bad)][0] if is_bad else jpegs[index % len(jpegs)]
                body = {"instances": [{"b64": b64(data)}]}
                jobs.append(
                    (is_bad, client.post(f"{predictor.url}/v1/models/{MODEL_NAME}:predict", json=body))
                )
            answers = await asyncio.gather(*(job for _, job in jobs))
            return [(is_bad, answer) for (is_bad, _), answer in zip(jobs, answers, strict=True)]

    for is_bad, response in asyncio.run(fire()):
        assert response.status_code == (400 if is_bad else 200), response.text
    assert httpx.get(f"{predictor.url}/v2/health/ready").status_code == 200


def test_too_many_images_in_one_request(predictor, jpegs):
    response = v1(predictor.url, [{"b64": b64(jpegs[0])}] * 65)
    assert response.status_code == 400
    assert "limit" in response.json()["error"]


def test_bad_requests_are_logged_in_one_line_without_a_traceback(predictor, jpegs):
    """A client cannot fill the log with tracebacks: each 4xx is one warning line naming the request."""
    import time

    log_path = predictor.log_path
    start = log_path.stat().st_size
    sends = [
        lambda: httpx.post(f"{predictor.url}/v1/models/nope:predict", json={"instances": []}),
        lambda: httpx.post(f"{predictor.url}/v2/models/nope/infer", json={"inputs": []}),
        lambda: httpx.get(f"{predictor.url}/v2/models/nope/ready"),
        lambda: v1(predictor.url, [{"b64": b64(b"not an image")}]),
        lambda: v1(predictor.url, [{"b64": b64(jpegs[0])}], parameters={"confidence": 1.5}),
    ]
    statuses = [send().status_code for send in sends]
    assert all(400 <= status < 500 for status in statuses), statuses
    deadline = time.monotonic() + 5
    while "nope/ready" not in log_path.read_bytes()[start:].decode() and time.monotonic() < deadline:
        time.sleep(0.05)
    written = log_path.read_bytes()[start:].decode()
    assert "Traceback" not in written, written
    assert (
        "/v1/models/nope:predict answered 404" in written and "/v2/models/nope/ready answered 404" in written
    )
    assert "nexus.serving.server WARNING" in written  # KServe's timestamped format, not a bare message
