"""More bad input, found by fuzzing a running predictor and a split deployment: each case answers a
4xx with a JSON error naming the problem (never a 500, never a silently wrong answer), and refuses
oversized images from their headers, before a decoder allocates them."""

from __future__ import annotations

import gzip
import io
import json
import socket
import struct
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image
from serving_client import LOW_CONF, MODEL_NAME, b64, metric_value, v1, v2_detections, v2_json
from test_transformer import split_processes

from nexus.errors import ImageDecodeError
from nexus.vision.image_io import _radiance_size, decode_image_bytes


@pytest.fixture(scope="module")
def split(detect_onnx, predictor_logs):
    with split_processes(detect_onnx, "t1", predictor_logs, prefix="bad-input-") as processes:
        yield processes


@pytest.fixture(params=["predictor", "transformer"])
def server(request):
    """The single predictor, then the transformer of a split deployment (same request handling)."""
    if request.param == "predictor":
        return request.getfixturevalue("predictor")
    return request.getfixturevalue("split")[0]


def png_header(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width x height`` pixels."""
    data = bytearray(cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)


def wide_tiff() -> bytes:
    """A 3-kB TIFF one pixel longer than the 2^20 pixels OpenCV allows a side (it raised: a 500)."""
    buffer = io.BytesIO()
    Image.new("RGB", ((1 << 20) + 1, 1)).save(buffer, "TIFF", compression="tiff_deflate")
    return buffer.getvalue()


RADIANCE = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n"


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (wide_tiff(), "image of 1048577x1 pixels has a side longer than 1048576 pixels"),
        # past Pillow's own cap (179 M pixels) its header went unread and OpenCV decoded the image whole
        (png_header(15_000, 15_000), "image of 225000000 pixels exceeds the limit of 64000000 pixels"),
        # Pillow cannot read Radiance HDR headers; OpenCV decoded it whole, as 32-bit floats
        (RADIANCE + b"-Y 9000 +X 9000\n" + bytes(64), "image of 9000x9000 pixels exceeds the limit"),
        (b"#?RADIANCE\n\n-Y 9000 +X 9000\n" + bytes(64), "unreadable Radiance HDR header"),
    ],
    ids=["side past OpenCV's limit", "PNG past Pillow's cap", "Radiance HDR bomb", "Radiance no FORMAT"],
)
def test_images_are_refused_from_their_headers(server, image, message):
    response = v1(server.url, [{"b64": b64(image)}])
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_real_png_past_pillows_cap_is_refused_without_decoding_it():
    """15000 x 15000 black pixels in 0.7 MB: the refusal must come before the 675 MB decode."""
    with pytest.raises(ImageDecodeError, match="225000000 pixels exceeds"):
        decode_image_bytes(black_png(15_000, 15_000))


@pytest.mark.parametrize(
    "header",
    [
        RADIANCE + b"-Y 4 +X 6\n",
        b"#?RGBE\nGAMMA=1\nFORMAT=32-bit_rle_rgbe\nSOFTWARE=x\n\n-Y 4 +X 6\n",
        RADIANCE + b"-Y4+X6\n",
        RADIANCE + b"-Y\t+4   +X  6 trailing\n",
        b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n" + b"C" * 127 + b"\n-Y 4 +X 6\n",  # a line fgets splits
        b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n" + b"C" * 127 + b"\n\n-Y 4 +X 6\n",
        b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\r\n\r\n-Y 4 +X 6\r\n",
        RADIANCE + b"+Y 4 +X 6\n",
        RADIANCE + b"-Y -4 +X 6\n",
    ],
)
def test_radiance_header_is_read_as_opencv_reads_it(header):
    """Where OpenCV decodes a Radiance image, our header reader gives its size (else it refuses)."""
    encoded = cv2.imencode(".hdr", np.full((4, 6, 3), 100, np.uint8))[1].tobytes()
    data = header + encoded[encoded.index(b"-Y 4 +X 6\n") + 10 :]
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    expected = None if decoded is None else (decoded.shape[1], decoded.shape[0])
    assert _radiance_size(data) == expected


def test_the_transformer_limits_images_per_request_like_the_predictor(split, jpegs):
    transformer, _ = split
    response = v1(transformer.url, [{"b64": b64(jpegs[0])}] * 65)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "request carries 65 images; the limit is 64 per request"
    tensor = {"name": "images", "shape": [65], "datatype": "BYTES", "data": [b64(jpegs[0])] * 65}
    response = v2_json(transformer.url, [tensor])
    assert response.status_code == 400 and "limit is 64" in response.json()["error"]


@pytest.mark.parametrize("transport", ["v1", "v2"])
def test_images_are_counted_before_any_is_decoded(server, transport):
    """A request over the image limit is refused for that, not for its first bad image: its images
    are never decoded (20 M base64 strings fit the body limit; decoding them held the loop for 16 s)."""
    items = ["***"] * 65
    if transport == "v1":
        response = v1(server.url, [{"b64": item} for item in items])
    else:
        response = v2_json(
            server.url, [{"name": "images", "shape": [65], "datatype": "BYTES", "data": items}]
        )
    assert response.status_code == 400
    assert "limit is 64" in response.json()["error"]


@pytest.mark.parametrize("classes", [[], "", ","])
@pytest.mark.parametrize("transport", ["v1", "v2"])
def test_an_empty_class_filter_is_refused(server, jpegs, classes, transport):
    """An empty filter used to drop every detection silently (200 with none)."""
    parameters = {**LOW_CONF, "classes": classes}
    if transport == "v1":
        response = v1(server.url, [{"b64": b64(jpegs[0])}], parameters)
    else:
        tensor = {"name": "images", "shape": [1], "datatype": "BYTES", "data": [b64(jpegs[0])]}
        response = v2_json(server.url, [tensor], parameters)
    assert response.status_code == 400, response.text
    assert "'classes' is empty" in response.json()["error"]


def uint8_tensor(data: list) -> dict:
    return {"name": "pixels", "shape": [1, 1, len(data) // 3, 3], "datatype": "UINT8", "data": data}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([0.5, 0.2, 0.9] * 4, "whole numbers within 0..255 (pixels, not pixels / 255), got float64"),
        ([True, False, True] * 4, "got bool values"),
        ([0, 128, 256] * 4, "within 0..255 (values from 0 to 256)"),
        ([-1, 0, 0] * 4, "within 0..255"),
    ],
    ids=["pixels / 255", "booleans", "past 255", "negative"],
)
def test_uint8_json_pixels_must_be_whole_numbers_in_range(predictor, data, message):
    """Pixels scaled to [0, 1] used to be cut to 0: a 200 describing a black image."""
    response = v2_json(predictor.url, [uint8_tensor(data)])
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_uint8_json_pixels_written_as_whole_floats_are_read(predictor):
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3))
    as_ints = v2_json(
        predictor.url, [dict(uint8_tensor(image.ravel().tolist()), shape=[1, 8, 8, 3])], LOW_CONF
    )
    as_floats = v2_json(
        predictor.url,
        [dict(uint8_tensor(image.astype(float).ravel().tolist()), shape=[1, 8, 8, 3])],
        LOW_CONF,
    )
    assert v2_detections(as_floats) == v2_detections(as_ints)


def images_tensor(jpeg: bytes) -> dict:
    return {"name": "images", "shape": [1], "datatype": "BYTES", "data": [b64(jpeg)]}


def infer(url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/{MODEL_NAME}/infer", json=body, timeout=30)


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ([{"name": "bboxes"}], "unknown outputs ['bboxes']; this model answers ['detections', 'boxes'"),
        ([{"name": "boxes"}, {"name": "masks"}], "unknown outputs ['masks']"),
        ("boxes", '"outputs" must be a list of objects'),
        ([{"name": 3}], '"outputs" must be a list of objects'),
        ([{"name": "boxes", "parameters": [1]}], '"outputs" must be a list of objects'),
    ],
)
def test_requested_outputs_must_be_outputs_of_the_model(server, jpegs, outputs, message):
    """``outputs`` used to be ignored: a typo answered every output, 200."""
    response = infer(server.url, {"inputs": [images_tensor(jpegs[0])], "outputs": outputs})
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_requested_outputs_are_the_ones_answered(server, jpegs):
    body = {"inputs": [images_tensor(jpegs[0])], "parameters": LOW_CONF}
    everything = {output["name"]: output for output in infer(server.url, body).json()["outputs"]}
    response = infer(server.url, {**body, "outputs": [{"name": "scores"}, {"name": "boxes"}]})
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert [output["name"] for output in outputs] == ["scores", "boxes"]
    assert outputs == [everything["scores"], everything["boxes"]]
    assert everything["scores"]["shape"][0] > 0  # the comparison covers real detections

    # binary data for one output (the extension's per-output parameter), JSON for the other
    response = infer(
        server.url,
        {**body, "outputs": [{"name": "boxes", "parameters": {"binary_data": True}}, {"name": "scores"}]},
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:length])
    boxes, scores = header["outputs"]
    assert "data" not in boxes and scores["data"] == everything["scores"]["data"]
    raw = np.frombuffer(response.content[length:], np.float32)
    assert raw.size == boxes["parameters"]["binary_data_size"] // 4
    np.testing.assert_allclose(raw, np.asarray(everything["boxes"]["data"], np.float32))


def test_binary_data_output_answers_every_output_as_binary(server, jpegs):
    response = infer(
        server.url,
        {"inputs": [images_tensor(jpegs[0])], "parameters": {**LOW_CONF, "binary_data_output": True}},
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:length])
    sizes = [output["parameters"]["binary_data_size"] for output in header["outputs"]]
    assert [output["name"] for output in header["outputs"]][:2] == ["detections", "boxes"]
    assert sum(sizes) == len(response.content) - length
    (document_length,) = struct.unpack("<I", response.content[length : length + 4])  # BYTES element
    document = json.loads(response.content[length + 4 : length + 4 + document_length])
    assert document["num_detections"] == len(document["detections"]) > 0


@pytest.mark.parametrize("body", [b"{}", b'{"instances": [{"b64": "AA=="}]}'])
def test_explain_is_refused_before_decoding_and_not_counted_as_a_server_error(server, body):
    """KServe answered a 501 after decoding the images, counted as ``outcome="error"``: the series
    that alerts and the canary rollback guard read as server failures."""
    metrics = lambda: httpx.get(f"{server.url}/metrics").text  # noqa: E731
    errors = metric_value(metrics(), "nexus_predictor_requests_total", outcome="error")
    response = httpx.post(
        f"{server.url}/v1/models/{MODEL_NAME}:explain",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert f"model {MODEL_NAME} serves no explanations" in response.json()["error"]
    assert metric_value(metrics(), "nexus_predictor_requests_total", outcome="error") == errors


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_a_compressed_body_is_refused_by_name(server, jpegs, protocol):
    """A gzip body used to fail as 'str is not valid UTF-8'."""
    if protocol == "v1":
        path, body = f"/v1/models/{MODEL_NAME}:predict", {"instances": [{"b64": b64(jpegs[0])}]}
    else:
        path, body = f"/v2/models/{MODEL_NAME}/infer", {"inputs": [images_tensor(jpegs[0])]}
    response = httpx.post(
        server.url + path,
        content=gzip.compress(json.dumps(body).encode()),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert response.status_code == 400, response.text
    assert "Content-Encoding 'gzip' is not supported" in response.json()["error"]


@pytest.mark.parametrize(("shape", "status"), [([True], 400), ([1, True], 400), ([1, 1], 200)])
def test_boolean_shapes_are_not_integers(predictor, jpegs, shape, status):
    response = v2_json(predictor.url, [{**images_tensor(jpegs[0]), "shape": shape}])
    assert response.status_code == status, response.text
    if status == 400:
        assert f"'shape' must be a list of non-negative integers, got {shape}" in response.json()["error"]


def black_png(width: int, height: int) -> bytes:
    """A black RGB PNG, compressed about 1000:1."""
    packer = zlib.compressobj(9)
    row = b"\x00" * (width * 3 + 1)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def peak_rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        pytest.skip("needs /proc to read a process's peak memory")
    line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_a_request_holds_its_images_letterboxed_not_whole(predictor):
    """16 PNGs of 4000 x 4000 pixels are 0.8 MB of request and 768 MB decoded: each image shrinks to
    its letterboxed size as it decodes instead of the request holding every whole decode (64 images of
    64 M pixels, 16 MB of request, took 12 GB)."""
    png = black_png(4000, 4000)
    before = peak_rss_bytes(predictor.process.pid)
    response = v1(predictor.url, [{"b64": b64(png)}] * 16)
    assert response.status_code == 200, response.text
    assert [p["image_shape"] for p in response.json()["predictions"]] == [[4000, 4000]] * 16
    assert peak_rss_bytes(predictor.process.pid) - before < 400 * 2**20


def test_large_pngs_answer_exactly_as_a_whole_decode(server, large_jpegs, detect_onnx):
    """Shrinking as it decodes is the letterbox's own resize, made earlier: the same detections."""
    from nexus.inference.detector import Detector

    pngs = [
        cv2.imencode(".png", cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))[1].tobytes()
        for data in large_jpegs[:2]
    ]
    expected = Detector.from_path(detect_onnx).predict(pngs, conf=LOW_CONF["confidence"])
    response = v1(server.url, [{"b64": b64(data)} for data in pngs], LOW_CONF)
    assert response.status_code == 200, response.text
    for got, want in zip(response.json()["predictions"], expected, strict=True):
        assert got["image_shape"] == [384, 384]
        assert got["num_detections"] == len(want) > 0
        np.testing.assert_allclose([d["xyxy"] for d in got["detections"]], want.xyxy, atol=0.02)
        assert [d["class_id"] for d in got["detections"]] == want.class_id.tolist()


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_the_entry_point_refuses_a_port_outside_the_tcp_range(capsys, port):
    """``python -m serving --port 99999`` loaded the model, then died in bind() with a traceback."""
    from nexus.serving.entrypoint import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "m.onnx", "--port", port])
    assert exit_info.value.code == 2
    assert f"--port must be within 1..65535, got {port}" in capsys.readouterr().err


def test_a_websocket_upgrade_is_answered_not_left_hanging(server):
    """The predictors serve no websockets; uvicorn's websocket support used to hold such a connection."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
        connection.sendall(
            f"POST /v1/models/{MODEL_NAME}:predict HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
            "Upgrade: websocket\r\nContent-Length: 2\r\n\r\n{}".encode()
        )
        assert connection.recv(4096).startswith(b"HTTP/1.1 4")
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200  # and it keeps serving
