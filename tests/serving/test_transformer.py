"""Split deployment: transformer (decode, letterbox, NMS) -> tensor predictor over v2 binary tensors."""

from __future__ import annotations

import asyncio
import re

import httpx
import numpy as np
import pytest
from kserve.errors import InferenceError
from kserve.protocol.infer_type import InferInput, InferRequest
from serving_client import (
    LOW_CONF,
    MODEL_NAME,
    b64,
    boxes_of,
    bytes_tensor,
    v1,
    v2_binary,
    v2_detections,
    v2_json,
)

from nexus.inference.detector import Detector
from nexus.serving.config import BatchingConfig
from nexus.serving.launcher import PredictorProcess, free_port
from nexus.serving.protocol import decode_v2_response
from nexus.serving.transformer import DetectionTransformer, TensorPredictor


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


def test_tensor_predictor_answers_binary_outputs_equal_to_json(split, detect_onnx):
    """What the transformer asks for: a binary FP32 tensor in, binary outputs back (the same numbers)."""
    _, tensor_predictor = split
    batch = np.random.default_rng(0).random((2, 3, 64, 96), dtype=np.float32)
    tensor = {"name": "input", "shape": list(batch.shape), "datatype": "FP32"}
    binary = v2_binary(tensor_predictor.url, tensor, batch.tobytes(), {"binary_data_output": True})
    assert binary.status_code == 200, binary.text
    assert binary.headers["content-type"] == "application/octet-stream"
    answer = decode_v2_response(binary.content, binary.headers["inference-header-content-length"], MODEL_NAME)
    as_json = v2_json(tensor_predictor.url, [dict(tensor, data=batch.ravel().tolist())])
    assert as_json.status_code == 200 and "inference-header-content-length" not in as_json.headers
    expected = decode_v2_response(as_json.content, None, MODEL_NAME)
    assert [o.name for o in answer.outputs] == [o.name for o in expected.outputs] == ["predictions"]
    assert answer.outputs[0].data.shape == (2, *expected.outputs[0].data.shape[1:])
    np.testing.assert_array_equal(answer.outputs[0].data, expected.outputs[0].data)
    direct, _ = Detector.from_path(detect_onnx).backend.infer(batch)
    np.testing.assert_allclose(answer.outputs[0].data, direct, rtol=1e-5, atol=1e-5)


def test_transformer_reports_an_unreachable_predictor_and_forgets_the_request():
    transformer = DetectionTransformer(MODEL_NAME, f"127.0.0.1:{free_port()}")
    tensor = InferInput("input", [1, 3, 8, 8], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 3, 8, 8), np.float32), binary_data=True)
    request = InferRequest(model_name=MODEL_NAME, infer_inputs=[tensor], request_id="r1")
    transformer._pending["r1"] = ("geometries", "options", "v1", None, [(8, 8)])
    with pytest.raises(InferenceError, match="did not answer"):
        asyncio.run(transformer.predict(request))
    assert transformer._pending == {}


def test_concurrent_requests_through_the_transformer_get_their_own_answers(split, jpegs):
    """Requests decode in parallel and wait on the predictor together; none gets another's boxes."""
    from concurrent.futures import ThreadPoolExecutor

    transformer, _ = split
    images = jpegs[:6]
    alone = [
        boxes_of(v1(transformer.url, [{"b64": b64(jpeg)}], LOW_CONF).json()["predictions"][0])
        for jpeg in images
    ]
    with ThreadPoolExecutor(6) as pool:
        responses = list(
            pool.map(lambda jpeg: v1(transformer.url, [{"b64": b64(jpeg)}], LOW_CONF), images * 2)
        )
    assert all(response.status_code == 200 for response in responses)
    assert [boxes_of(r.json()["predictions"][0]) for r in responses] == alone * 2


def test_tensor_predictor_batches_concurrent_requests_per_input_size(detect_onnx):
    predictor = TensorPredictor(MODEL_NAME, str(detect_onnx), batching=BatchingConfig(max_batch_size=16))
    predictor.load()
    rng = np.random.default_rng(1)
    shapes = [(2, 3, 64, 64), (1, 3, 64, 96), (1, 3, 64, 64), (3, 3, 64, 96), (1, 3, 64, 64)]
    batches = [rng.random(shape, dtype=np.float32) for shape in shapes]

    def request(batch: np.ndarray, index: int) -> InferRequest:
        tensor = InferInput("input", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch, binary_data=True)
        return InferRequest(model_name=MODEL_NAME, infer_inputs=[tensor], request_id=f"r{index}")

    async def all_at_once():
        return await asyncio.gather(*(predictor.predict(request(b, i)) for i, b in enumerate(batches)))

    try:
        answers = asyncio.run(all_at_once())
        assert predictor.batcher.batches_run < len(batches)  # requests shared forward passes
        for index, (batch, answer) in enumerate(zip(batches, answers, strict=True)):
            assert answer.id == f"r{index}"
            expected, _ = predictor.detector.backend.infer(batch)
            np.testing.assert_allclose(answer.outputs[0].data, expected, rtol=1e-4, atol=1e-4)
    finally:
        predictor.stop()


@pytest.mark.parametrize(
    ("shape", "message"),
    [([0, 3, 64, 64], r"\[N,3,H,W\]"), ([1, 3, 64, 70], "multiples of the model's stride")],
)
def test_tensor_predictor_refuses_tensors_it_cannot_run(split, shape, message):
    _, tensor_predictor = split
    raw = np.zeros(shape, np.float32).tobytes()
    response = v2_binary(tensor_predictor.url, {"name": "input", "shape": shape, "datatype": "FP32"}, raw)
    assert response.status_code == 400 and re.search(message, response.json()["error"]), response.text
