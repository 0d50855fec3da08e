"""The KServe predictor over HTTP: v1, v2 (JSON, binary tensors, raw pixels), metadata, parameters."""

from __future__ import annotations

import json

import cv2
import httpx
import numpy as np
import pytest
from serving_client import (
    LOW_CONF,
    MODEL_NAME,
    b64,
    boxes_of,
    bytes_tensor,
    metric_value,
    v1,
    v2_binary,
    v2_detections,
    v2_json,
)

from nexus.cpu import cpu_count


def test_v1_matches_in_process_detector(predictor, jpegs, detect_onnx):
    from nexus.inference.detector import Detector

    instances = [{"image_bytes": {"b64": b64(jpegs[0])}}, {"b64": b64(jpegs[1])}]
    response = v1(predictor.url, instances, LOW_CONF)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "v1"
    assert len(body["predictions"]) == 2
    detector = Detector.from_path(detect_onnx)
    expected = detector.predict(jpegs[:2], conf=LOW_CONF["confidence"])
    for got, want in zip(body["predictions"], expected, strict=True):
        assert got["num_detections"] == len(want) > 0
        np.testing.assert_allclose([d["xyxy"] for d in got["detections"]], want.xyxy, atol=0.02)
        assert [d["class_name"] for d in got["detections"]] == want.class_name


def test_all_transports_give_the_same_detections(predictor, jpegs):
    """v1 base64, v2 JSON base64, v2 binary BYTES and v2 raw UINT8 pixels agree."""
    reference = v1(predictor.url, [{"b64": b64(jpegs[2])}], LOW_CONF).json()["predictions"][0]
    assert reference["num_detections"] > 0
    pixels = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(jpegs[2], np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )
    answers = {
        "v2-json-bytes": v2_json(
            predictor.url,
            [{"name": "images", "shape": [1], "datatype": "BYTES", "data": [b64(jpegs[2])]}],
            LOW_CONF,
        ),
        "v2-binary-bytes": v2_binary(
            predictor.url,
            {"name": "images", "shape": [1], "datatype": "BYTES"},
            bytes_tensor([jpegs[2]]),
            LOW_CONF,
        ),
        "v2-binary-uint8": v2_binary(
            predictor.url,
            {"name": "pixels", "shape": [1, *pixels.shape], "datatype": "UINT8"},
            pixels.tobytes(),
            LOW_CONF,
        ),
        "v2-json-uint8": v2_json(
            predictor.url,
            [
                {
                    "name": "pixels",
                    "shape": [1, *pixels.shape],
                    "datatype": "UINT8",
                    "data": pixels.ravel().tolist(),
                }
            ],
            LOW_CONF,
        ),
    }
    for transport, response in list(answers.items()):
        (result,) = v2_detections(response)
        assert boxes_of(result) == boxes_of(reference), transport
        assert result["image_shape"] == reference["image_shape"]


def test_v2_flat_tensors_describe_every_detection(predictor, jpegs):
    response = v2_binary(
        predictor.url, {"name": "images", "shape": [3], "datatype": "BYTES"}, bytes_tensor(jpegs[:3])
    )
    body = response.json()
    outputs = {output["name"]: output for output in body["outputs"]}
    documents = [json.loads(d) for d in outputs["detections"]["data"]]
    total = sum(d["num_detections"] for d in documents)
    assert outputs["boxes"]["shape"] == [total, 4]
    assert outputs["scores"]["shape"] == outputs["class_ids"]["shape"] == [total]
    assert outputs["image_index"]["data"] == [i for i, d in enumerate(documents) for _ in d["detections"]]
    assert body["model_version"] == "v1"


def test_metadata_lists_inputs_outputs_and_class_names(predictor):
    body = httpx.get(f"{predictor.url}/v2/models/{MODEL_NAME}").json()
    assert body["name"] == MODEL_NAME
    assert {i["name"]: i["datatype"] for i in body["inputs"]} == {"images": "BYTES", "pixels": "UINT8"}
    assert {o["name"] for o in body["outputs"]} == {
        "detections",
        "boxes",
        "scores",
        "class_ids",
        "image_index",
    }
    assert (
        sorted(body["parameters"]["names"].values()) == ["circle", "square", "triangle"]
        or body["parameters"]["names"]
    )
    assert body["parameters"]["task"] == "detect"
    assert body["parameters"]["backend"].startswith("onnxruntime")
    assert body["parameters"]["batch_shards"] == min(cpu_count(), 8)  # the fixture batches up to 8
    assert body["parameters"]["scaled_jpeg_decode"] is True
    assert httpx.get(f"{predictor.url}/v2/models/nope").status_code == 404


def test_versioned_routes_answer_for_the_served_version_only(predictor, jpegs):
    body = {"inputs": [{"name": "images", "shape": [1], "datatype": "BYTES", "data": [b64(jpegs[1])]}]}
    plain = v2_detections(httpx.post(f"{predictor.url}/v2/models/{MODEL_NAME}/infer", json=body))
    versioned = httpx.post(f"{predictor.url}/v2/models/{MODEL_NAME}/versions/v1/infer", json=body)
    assert v2_detections(versioned) == plain
    assert httpx.get(f"{predictor.url}/v2/models/{MODEL_NAME}/versions/v1").json()["versions"] == ["v1"]
    assert httpx.get(f"{predictor.url}/v2/models/{MODEL_NAME}/versions/v1/ready").json()["ready"] is True
    for answer in (
        httpx.post(f"{predictor.url}/v2/models/{MODEL_NAME}/versions/v2/infer", json=body),
        httpx.get(f"{predictor.url}/v2/models/{MODEL_NAME}/versions/v2"),
        httpx.get(f"{predictor.url}/v2/models/{MODEL_NAME}/versions/v2/ready"),
    ):
        assert answer.status_code == 404
        assert answer.json()["error"] == f"model {MODEL_NAME} has no version 'v2'; it serves version 'v1'"
    assert httpx.get(f"{predictor.url}/v2/models/nope/versions/v1").status_code == 404


@pytest.mark.parametrize(
    ("parameters", "check"),
    [
        ({"confidence": 0.999}, lambda dets, ref: len(dets) <= len(ref)),
        ({"max_det": 1}, lambda dets, ref: len(dets) == min(1, len(ref))),
        (
            {"classes": "1"},
            lambda dets, ref: [d for d in ref if d["class_id"] == 1] == dets,
        ),
        ({"classes": "0,1,2", "iou": 0.5}, lambda dets, ref: len(dets) >= 1),
        ({"conf": 0.0005}, lambda dets, ref: len(dets) >= len(ref)),
    ],
)
@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_per_request_parameters(predictor, jpegs, parameters, check, protocol):
    reference = v1(predictor.url, [{"b64": b64(jpegs[3])}], LOW_CONF).json()["predictions"][0]["detections"]
    parameters = parameters if "conf" in parameters else {**LOW_CONF, **parameters}
    if protocol == "v1":
        response = v1(predictor.url, [{"b64": b64(jpegs[3])}], parameters)
        assert response.status_code == 200, response.text
        detections = response.json()["predictions"][0]["detections"]
    else:
        tensor = {"name": "images", "shape": [1], "datatype": "BYTES", "data": [b64(jpegs[3])]}
        (result,) = v2_detections(v2_json(predictor.url, [tensor], parameters))
        detections = result["detections"]
    assert check(detections, reference)


def _top_boxes_match(got: list[dict], want, top: int = 5, min_iou: float = 0.9) -> None:
    """The ``top`` best detections of ``want`` (a ``Detections``) each have a served box of their
    class that overlaps them by ``min_iou``, in full-image pixels."""
    from nexus.vision.nms import box_iou

    assert got and len(want)
    got_boxes = np.array([d["xyxy"] for d in got], np.float32)
    got_classes = np.array([d["class_id"] for d in got])
    for box, class_id in zip(want.xyxy[:top], want.class_id[:top], strict=True):
        same_class = got_classes == class_id
        assert same_class.any(), f"no served detection of class {class_id}"
        assert box_iou(box[None], got_boxes[same_class]).max() >= min_iou, (box, got_boxes[same_class])


def test_large_jpegs_decode_scaled_and_answer_in_full_image_pixels(predictor, large_jpegs, detect_onnx):
    """A JPEG four times the model's input decodes at 1/4; detections still refer to the full image
    and agree with a whole decode (the model sees nearly the same letterboxed pixels)."""
    from nexus.inference.detector import Detector

    response = v1(predictor.url, [{"b64": b64(data)} for data in large_jpegs], LOW_CONF)
    assert response.status_code == 200, response.text
    expected = Detector.from_path(detect_onnx).predict(large_jpegs, conf=LOW_CONF["confidence"])
    for got, want in zip(response.json()["predictions"], expected, strict=True):
        assert got["image_shape"] == [384, 384]
        assert max(max(d["xyxy"]) for d in got["detections"]) > 96  # full-image pixels, not 1/4 ones
        _top_boxes_match(got["detections"], want)


def test_full_decode_flag_answers_exactly_as_a_whole_decode(detect_onnx, large_jpegs, predictor_logs):
    from nexus.inference.detector import Detector
    from nexus.serving.launcher import PredictorProcess

    expected = Detector.from_path(detect_onnx).predict(large_jpegs[:2], conf=LOW_CONF["confidence"])
    with PredictorProcess.start(
        detect_onnx, log_path=predictor_logs / "full-decode.log", extra_args=["--full-decode"]
    ) as process:
        response = v1(process.url, [{"b64": b64(data)} for data in large_jpegs[:2]], LOW_CONF)
        metadata = httpx.get(f"{process.url}/v2/models/{MODEL_NAME}").json()
    assert metadata["parameters"]["scaled_jpeg_decode"] is False
    assert response.status_code == 200, response.text
    for got, want in zip(response.json()["predictions"], expected, strict=True):
        assert got["num_detections"] == len(want) > 0
        np.testing.assert_allclose([d["xyxy"] for d in got["detections"]], want.xyxy, atol=0.02)


def test_segmentation_masks_of_a_scaled_decode_cover_the_full_image(segment_predictor, large_jpegs):
    response = v1(segment_predictor.url, [{"b64": b64(large_jpegs[0])}], LOW_CONF)
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert prediction["image_shape"] == [384, 384] and prediction["num_detections"] > 0
    assert all(d["mask"]["size"] == [384, 384] for d in prediction["detections"])


def test_segmentation_returns_rle_masks(segment_predictor, jpegs):
    response = httpx.post(
        f"{segment_predictor.url}/v1/models/{MODEL_NAME}:predict",
        json={"instances": [{"b64": b64(jpegs[0])}], "parameters": {"confidence": 0.001}},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert prediction["num_detections"] > 0
    mask = prediction["detections"][0]["mask"]
    assert mask["size"] == prediction["image_shape"] and isinstance(mask["counts"], str)
    meta = httpx.get(f"{segment_predictor.url}/v2/models/{MODEL_NAME}").json()
    assert meta["parameters"]["task"] == "segment"


def test_ready_and_metrics_per_stage(predictor, jpegs):
    assert httpx.get(f"{predictor.url}/v2/health/ready").json()["ready"] is True
    assert httpx.get(f"{predictor.url}/v2/models/{MODEL_NAME}/ready").status_code == 200
    series = [
        *(
            ("nexus_predictor_stage_seconds_count", {"model": MODEL_NAME, "stage": stage, "version": "v1"})
            for stage in ("decode", "queue_wait", "preprocess", "inference", "postprocess")
        ),
        ("nexus_predictor_batch_size_count", {"model": MODEL_NAME, "version": "v1"}),
        ("nexus_predictor_requests_total", {"model": MODEL_NAME, "outcome": "ok", "version": "v1"}),
        # KServe's own per-handler latencies, which the predictor records as kserve.Model does
        *(
            (f"request_{step}_seconds_count", {"model_name": MODEL_NAME})
            for step in ("preprocess", "predict", "postprocess")
        ),
    ]
    before = httpx.get(f"{predictor.url}/metrics").text
    assert v1(predictor.url, [{"b64": b64(jpegs[0])}]).status_code == 200
    after = httpx.get(f"{predictor.url}/metrics").text
    for name, labels in series:
        assert metric_value(after, name, **labels) == metric_value(before, name, **labels) + 1, (name, labels)
    assert metric_value(after, "request_predict_seconds_sum", model_name=MODEL_NAME) > metric_value(
        before, "request_predict_seconds_sum", model_name=MODEL_NAME
    )
    assert "uvicorn.access" not in predictor.log_path.read_text()  # per-request access logs are off


def test_sequential_requests_run_inline_without_queueing(predictor, jpegs):
    """Alone in the server, a request skips the batcher: its queue wait is recorded as exactly 0."""

    def queue_wait() -> tuple[float, float]:
        values = {}
        for line in httpx.get(f"{predictor.url}/metrics").text.splitlines():
            ours = line.startswith("nexus_predictor_stage_seconds_")
            if ours and 'stage="queue_wait",version="v1"' in line:
                values[line.split("{")[0].rsplit("_", 1)[1]] = float(line.split()[-1])
        return values["count"], values["sum"]

    count, total = queue_wait()
    for jpeg in jpegs[:3]:
        assert v1(predictor.url, [{"b64": b64(jpeg)}]).status_code == 200
    after_count, after_total = queue_wait()
    assert after_count == count + 3
    assert after_total == total
