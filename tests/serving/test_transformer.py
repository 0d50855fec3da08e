"""Split deployment: transformer (decode, letterbox, NMS) -> tensor predictor over v2 JSON tensors."""

from __future__ import annotations

import httpx
import pytest
from serving_client import LOW_CONF, MODEL_NAME, b64, boxes_of, bytes_tensor, v1, v2_binary, v2_detections

from nexus.serving.launcher import PredictorProcess


@pytest.fixture(scope="module")
def split(detect_onnx, predictor_logs):
    with PredictorProcess.start(
        detect_onnx,
        version="t1",
        log_path=predictor_logs / "tensor.log",
        extra_args=["--mode", "tensor-predictor"],
    ) as tensor_predictor:
        host = tensor_predictor.url.removeprefix("http://")
        with PredictorProcess.start(
            None,
            version="t1",
            log_path=predictor_logs / "transformer.log",
            extra_args=["--mode", "transformer", "--predictor-host", host],
        ) as transformer:
            yield transformer, tensor_predictor


def test_transformer_matches_the_single_predictor(split, predictor, jpegs):
    transformer, _ = split
    instances = [{"b64": b64(jpegs[0])}, {"b64": b64(jpegs[1])}]
    direct = v1(predictor.url, instances, LOW_CONF).json()["predictions"]
    response = v1(transformer.url, instances, LOW_CONF)
    assert response.status_code == 200, response.text
    via_transformer = response.json()["predictions"]
    assert [boxes_of(r) for r in via_transformer] == [boxes_of(r) for r in direct]
    binary = v2_binary(
        transformer.url,
        {"name": "images", "shape": [1], "datatype": "BYTES"},
        bytes_tensor([jpegs[0]]),
        LOW_CONF,
    )
    (result,) = v2_detections(binary)
    assert boxes_of(result) == boxes_of(direct[0])


def test_transformer_rejects_bad_images_and_the_predictor_bad_tensors(split):
    transformer, tensor_predictor = split
    response = v1(transformer.url, [{"b64": b64(b"junk")}])
    assert response.status_code == 400 and "decodable" in response.json()["error"]
    bad_tensor = {
        "inputs": [{"name": "input", "shape": [1, 2, 4, 4], "datatype": "FP32", "data": [0.0] * 32}]
    }
    response = httpx.post(f"{tensor_predictor.url}/v2/models/{MODEL_NAME}/infer", json=bad_tensor)
    assert response.status_code == 400 and "[N,3,H,W]" in response.json()["error"]
    meta = httpx.get(f"{tensor_predictor.url}/v2/models/{MODEL_NAME}").json()
    assert meta["parameters"]["task"] == "detect" and meta["inputs"][0]["datatype"] == "FP32"
