"""The inference fast path: same answers as KServe's routes, everything else passed to the app."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace

import httpx
import kserve
import numpy as np
import pytest
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from serving_client import LOW_CONF, MODEL_NAME, b64, bytes_tensor
from starlette.responses import JSONResponse

from nexus.serving.config import BatchingConfig, PredictorConfig
from nexus.serving.fast_path import InferenceFastPathMiddleware, inference_route


async def fallback_app(scope, receive, send) -> None:
    """Stands for KServe's FastAPI app: answers 418 naming the path it was given."""
    await JSONResponse({"fallback": scope["path"]}, status_code=418)(scope, receive, send)


class FailingModel(kserve.Model):
    def load(self) -> bool:
        self.ready = True
        return True

    def predict(self, payload, headers=None):
        raise RuntimeError("boom")


class UnreadyModel(kserve.Model):
    """Registered but never loaded."""


@pytest.fixture(scope="module")
def app(detect_onnx, tmp_path_factory):
    from nexus.serving.predictor import DetectionPredictor

    predictor = DetectionPredictor(
        PredictorConfig(model_uri=str(detect_onnx), batching=BatchingConfig(max_batch_size=4, max_delay_ms=2))
    )
    predictor.load()
    failing = FailingModel("failing")
    failing.load()
    repository = ModelRepository(models_dir=str(tmp_path_factory.mktemp("models")))
    for model in (predictor, failing, UnreadyModel("unready")):
        repository.update(model)
    server = SimpleNamespace(registered_models=repository, dataplane=DataPlane(model_registry=repository))
    yield InferenceFastPathMiddleware(fallback_app, server=server)
    predictor.stop()


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/models/nexus-detector:predict", ("v1", "nexus-detector")),
        ("/v2/models/m.1/infer", ("v2", "m.1")),
        ("/v2/models/m/versions/3/infer", None),
        ("/v1/models/nexus-detector:explain", None),
        ("/v1/models/:predict", None),
        ("/v2/models/m", None),
        ("/metrics", None),
    ],
)
def test_inference_routes_are_recognised(path, expected):
    assert inference_route(path) == expected


def test_v1_answers_like_the_detector(app, jpegs, detect_onnx):
    from nexus.inference.detector import Detector

    body = {"instances": [{"b64": b64(jpegs[0])}, {"b64": b64(jpegs[1])}], "parameters": LOW_CONF}
    response = call(app, "POST", f"/v1/models/{MODEL_NAME}:predict", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    expected = Detector.from_path(detect_onnx).predict(jpegs[:2], conf=LOW_CONF["confidence"])
    for got, want in zip(response.json()["predictions"], expected, strict=True):
        assert got["num_detections"] == len(want) > 0
        np.testing.assert_allclose([d["xyxy"] for d in got["detections"]], want.xyxy, atol=0.02)


def test_v2_binary_gives_the_same_detections_as_v1(app, jpegs):
    v1_body = {"instances": [b64(jpegs[2])], "parameters": LOW_CONF}
    v1 = call(app, "POST", f"/v1/models/{MODEL_NAME}:predict", json=v1_body).json()["predictions"][0]
    raw = bytes_tensor([jpegs[2]])
    size = {"binary_data_size": len(raw)}
    tensor = {"name": "images", "shape": [1], "datatype": "BYTES", "parameters": size}
    header = json.dumps({"inputs": [tensor], "parameters": LOW_CONF}).encode()
    headers = {"inference-header-content-length": str(len(header))}
    response = call(app, "POST", f"/v2/models/{MODEL_NAME}/infer", content=header + raw, headers=headers)
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    (document,) = outputs["detections"]["data"]
    assert [d["xyxy"] for d in json.loads(document)["detections"]] == [d["xyxy"] for d in v1["detections"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v1/models/{MODEL_NAME}:predict"),  # not a POST
        ("POST", "/v1/models/nope:predict"),  # unknown model: KServe's 404
        ("POST", "/v1/models/unready:predict"),  # not ready: KServe's 503
        ("POST", f"/v2/models/{MODEL_NAME}/versions/1/infer"),
        ("GET", f"/v2/models/{MODEL_NAME}"),
        ("GET", "/metrics"),
    ],
)
def test_everything_else_goes_to_the_app(app, method, path):
    response = call(app, method, path)
    assert response.status_code == 418
    assert response.json() == {"fallback": path}


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "message"),
    [
        (f"/v1/models/{MODEL_NAME}:predict", {"json": {"instances": [{"b64": "***"}]}}, 400, "base64"),
        (
            f"/v1/models/{MODEL_NAME}:predict",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "Unrecognized request format",
        ),
        (f"/v2/models/{MODEL_NAME}/infer", {"content": b"[]"}, 400, ""),
        ("/v1/models/failing:predict", {"json": {"instances": [1]}}, 500, "RuntimeError : boom"),
    ],
)
def test_errors_are_json_with_kserve_status_codes(app, path, kwargs, status, message):
    response = call(app, "POST", path, **kwargs)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("requests_in_server", "inline"),
    [
        (lambda: 1, True),  # alone: decoded and run on the event loop, no batch
        (lambda: 4, False),  # others are waiting: through the batcher
        (None, False),  # not called through the fast path: through the batcher
    ],
)
def test_a_lone_request_runs_inline(detect_onnx, jpegs, requests_in_server, inline):
    from nexus.inference.detector import Detector
    from nexus.serving.fast_path import REQUESTS_IN_SERVER
    from nexus.serving.predictor import DetectionPredictor

    predictor = DetectionPredictor(PredictorConfig(model_uri=str(detect_onnx), warmup=False))
    predictor.load()

    async def run() -> dict:
        token = REQUESTS_IN_SERVER.set(requests_in_server)
        try:
            response, _ = await predictor({"instances": [b64(jpegs[3])], "parameters": LOW_CONF}, {})
            return response
        finally:
            REQUESTS_IN_SERVER.reset(token)

    try:
        response = asyncio.run(run())
        assert (predictor.batcher.batches_run == 0) is inline
        expected = Detector.from_path(detect_onnx).predict(jpegs[3:4], conf=LOW_CONF["confidence"])[0]
        got = response["predictions"][0]["detections"]
        np.testing.assert_allclose([d["xyxy"] for d in got], expected.xyxy, atol=0.02)
    finally:
        predictor.stop()


def test_requests_in_server_come_from_uvicorn(app):
    """The count is uvicorn's set of started request tasks; unknown counts as busy."""
    assert app._requests_in_server() > 1  # this fixture has no uvicorn server behind it
    tasks = {object()}
    uvicorn_server = SimpleNamespace(server_state=SimpleNamespace(tasks=tasks))
    middleware = InferenceFastPathMiddleware(
        fallback_app, server=SimpleNamespace(_rest_server=SimpleNamespace(_server=uvicorn_server))
    )
    assert middleware._requests_in_server() == 1
    tasks.add(object())
    assert middleware._requests_in_server() == 2


def test_latency_log_line_when_kserve_latency_logging_is_on(app, jpegs):
    """The predictor's own predict call writes KServe's per-request latency line when asked."""
    from kserve.logging import trace_logger

    model = app.server.registered_models.get_model(MODEL_NAME)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    trace_logger.addHandler(handler)
    level = trace_logger.level
    trace_logger.setLevel(logging.INFO)
    try:
        response = call(
            app, "POST", f"/v1/models/{MODEL_NAME}:predict", json={"instances": [{"b64": b64(jpegs[0])}]}
        )
        assert response.status_code == 200
        assert records == []  # off by default
        model.enable_latency_logging = True
        response = call(
            app, "POST", f"/v1/models/{MODEL_NAME}:predict", json={"instances": [{"b64": b64(jpegs[0])}]}
        )
    finally:
        model.enable_latency_logging = False
        trace_logger.removeHandler(handler)
        trace_logger.setLevel(level)
    assert response.status_code == 200
    (record,) = records
    message = record.getMessage()
    assert all(f"{step}_ms: " in message for step in ("preprocess", "predict", "postprocess"))
    assert float(message.split("predict_ms: ")[1].split(",")[0]) > 0
