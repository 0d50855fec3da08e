"""Split deployment: transformer (decode, letterbox, NMS) -> tensor predictor over v2 binary tensors."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
    metric_value,
    v1,
    v2_binary,
    v2_detections,
    v2_json,
)

from nexus.cpu import cpu_count
from nexus.errors import NexusError
from nexus.inference.detector import Detector
from nexus.serving.config import BatchingConfig
from nexus.serving.launcher import PredictorProcess, free_port, wait_ready
from nexus.serving.manifests import DeploymentSettings, inference_service_manifest, serving_runtime_manifest
from nexus.serving.protocol import decode_v2_response
from nexus.serving.transformer import (
    DIGEST_PARAMETER,
    METADATA_PARAMETER,
    DetectionTransformer,
    TensorPredictor,
    _MetadataOnlyBackend,
    fetch_metadata,
    metadata_digest,
)

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def split_processes(model: Path, version: str, log_dir: Path, prefix: str = ""):
    """A tensor predictor for ``model`` and a transformer in front of it, as two processes."""
    with PredictorProcess.start(
        model,
        version=version,
        log_path=log_dir / f"{prefix}tensor.log",
        extra_args=["--mode", "tensor-predictor"],
    ) as tensor_predictor:
        host = tensor_predictor.url.removeprefix("http://")
        with PredictorProcess.start(
            None,
            version=version,
            log_path=log_dir / f"{prefix}transformer.log",
            extra_args=["--mode", "transformer", "--predictor-host", host],
        ) as transformer:
            yield transformer, tensor_predictor


@pytest.fixture(scope="module")
def split(detect_onnx, predictor_logs):
    with split_processes(detect_onnx, "t1", predictor_logs) as processes:
        yield processes


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


def test_transformer_decodes_large_jpegs_scaled_like_the_single_predictor(split, predictor, large_jpegs):
    transformer, _ = split
    instances = [{"b64": b64(data)} for data in large_jpegs]
    direct = v1(predictor.url, instances, LOW_CONF).json()["predictions"]
    response = v1(transformer.url, instances, LOW_CONF)
    assert response.status_code == 200, response.text
    via_transformer = response.json()["predictions"]
    assert [r["image_shape"] for r in via_transformer] == [[384, 384]] * len(large_jpegs)
    assert [boxes_of(r) for r in via_transformer] == [boxes_of(r) for r in direct]
    metadata = httpx.get(f"{transformer.url}/v2/models/{MODEL_NAME}").json()
    assert metadata["parameters"]["scaled_jpeg_decode"] is True


def test_transformer_rejects_bad_images_and_the_predictor_bad_tensors(split):
    transformer, tensor_predictor = split
    response = v1(transformer.url, [{"b64": b64(b"junk")}])
    assert response.status_code == 400 and "decodable" in response.json()["error"]
    response = v1(transformer.url, [{"b64": b64(b"junk")}], {"classes": [99]})
    assert response.status_code == 400 and "[99] are not classes of this model" in response.json()["error"]
    bad_tensor = {
        "inputs": [{"name": "input", "shape": [1, 2, 4, 4], "datatype": "FP32", "data": [0.0] * 32}]
    }
    response = httpx.post(f"{tensor_predictor.url}/v2/models/{MODEL_NAME}/infer", json=bad_tensor)
    assert response.status_code == 400 and "[N,3,H,W]" in response.json()["error"]
    meta = httpx.get(f"{tensor_predictor.url}/v2/models/{MODEL_NAME}").json()
    assert meta["parameters"]["task"] == "detect" and meta["inputs"][0]["datatype"] == "UINT8"
    assert meta["parameters"]["input_datatypes"] == ["UINT8", "FP32"]
    # the public endpoint of a split deployment describes the model like the single predictor does
    public = httpx.get(f"{transformer.url}/v2/models/{MODEL_NAME}").json()
    assert public["parameters"]["names"] == meta["parameters"]["names"]
    assert public["parameters"]["task"] == "detect" and public["platform"].startswith("nexus/remote:")
    assert {spec["datatype"] for spec in public["inputs"]} == {"BYTES", "UINT8"}


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
    shards = min(cpu_count(), 16)  # one ONNX Runtime session per core, each running its own batches
    assert predictor.describe()["batch_shards"] == shards
    assert predictor.batcher.concurrency == (shards if shards > 1 else 1)
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


def test_tensor_predictor_scales_uint8_pixels_on_the_device_for_a_pytorch_model(detect_weights, val_images):
    """A PyTorch model takes UINT8 pixels to its device as bytes and scales them there (on a GPU a
    quarter of FP32's bytes cross the bus); the outputs equal the FP32 input's. Runs on the CPU here."""
    import cv2

    from nexus.vision.letterbox import letterbox_batch

    predictor = TensorPredictor(MODEL_NAME, str(detect_weights), batching=BatchingConfig(max_batch_size=4))
    predictor.load()
    backend = predictor.detector.backend
    assert backend.name.startswith("torch:")
    on_device: list[tuple] = []
    infer_pixels = backend.infer_pixels
    backend.infer_pixels = lambda pixels: on_device.append(pixels.shape) or infer_pixels(pixels)
    images = [cv2.imread(str(path)) for path in val_images[:2]]
    pixels, _ = letterbox_batch(images, 96, dtype=np.uint8)
    scaled, _ = letterbox_batch(images, 96, dtype=np.float32)

    def request(batch: np.ndarray, datatype: str) -> InferRequest:
        tensor = InferInput("input", list(batch.shape), datatype)
        tensor.set_data_from_numpy(batch, binary_data=True)
        return InferRequest(model_name=MODEL_NAME, infer_inputs=[tensor])

    try:
        from_pixels = asyncio.run(predictor.predict(request(pixels, "UINT8"))).outputs[0].data
        assert on_device == [pixels.shape]  # the UINT8 batch went to the device unscaled
        from_floats = asyncio.run(predictor.predict(request(scaled, "FP32"))).outputs[0].data
        assert on_device == [pixels.shape]  # FP32 input takes the ordinary path
        np.testing.assert_allclose(from_pixels, from_floats, rtol=1e-5, atol=1e-4)
    finally:
        predictor.stop()


def test_tensor_predictor_scales_uint8_pixels_exactly_like_the_letterbox(split, jpegs):
    """What the transformer sends (UINT8 pixels, a quarter of FP32's bytes) gives the same outputs as the
    FP32 batch ``letterbox_batch`` makes from the same images, bit for bit."""
    import cv2

    from nexus.vision.letterbox import letterbox_batch

    _, tensor_predictor = split
    images = [cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) for jpeg in jpegs[:2]]
    pixels, _ = letterbox_batch(images, 96, dtype=np.uint8)
    scaled, _ = letterbox_batch(images, 96, dtype=np.float32)
    assert pixels.dtype == np.uint8 and pixels.shape == scaled.shape
    answers = []
    for batch, datatype in ((pixels, "UINT8"), (scaled, "FP32")):
        tensor = {"name": "input", "shape": list(batch.shape), "datatype": datatype}
        reply = v2_binary(tensor_predictor.url, tensor, batch.tobytes(), {"binary_data_output": True})
        assert reply.status_code == 200, reply.text
        length = reply.headers["inference-header-content-length"]
        answers.append(decode_v2_response(reply.content, length, MODEL_NAME).outputs[0].data)
    np.testing.assert_array_equal(answers[0], answers[1])
    int32 = {"name": "input", "shape": [1, 3, 64, 64], "datatype": "INT32"}
    refused = v2_binary(tensor_predictor.url, int32, bytes(4 * 3 * 64 * 64))
    assert refused.status_code == 400 and "expected UINT8 pixels or FP32" in refused.json()["error"]


@pytest.mark.parametrize(
    ("shape", "fill", "message"),
    [
        ([0, 3, 64, 64], 0.0, r"\[N,3,H,W\]"),
        ([1, 3, 64, 70], 0.0, "multiples of the model's stride"),
        ([1, 3, 64, 64], 255.0, r"finite values in \[0, 1\] \(pixel / 255\), got values from 255.0"),
        ([1, 3, 64, 64], float("nan"), r"finite values in \[0, 1\]"),
        ([1, 3, 64, 64], -0.5, r"got values from -0.5 to -0.5"),
    ],
)
def test_tensor_predictor_refuses_tensors_it_cannot_run(split, shape, fill, message):
    _, tensor_predictor = split
    raw = np.full(shape, fill, np.float32).tobytes()
    response = v2_binary(tensor_predictor.url, {"name": "input", "shape": shape, "datatype": "FP32"}, raw)
    assert response.status_code == 400 and re.search(message, response.json()["error"]), response.text


def test_tensor_predictor_refuses_uint8_values_past_255(split):
    _, tensor_predictor = split
    tensor = {"name": "input", "shape": [1, 3, 32, 32], "datatype": "UINT8", "data": [256] * (3 * 32 * 32)}
    response = v2_json(tensor_predictor.url, [tensor])
    assert response.status_code == 400 and "within 0..255" in response.json()["error"], response.text


# ------------------------------------------------------------------ the split deployment on KServe


def test_entrypoint_accepts_the_arguments_kserve_gives_a_transformer():
    """KServe's controller appends --model_name, --predictor_host and --http_port (and --workers with
    containerConcurrency) to a transformer container's own arguments."""
    from nexus.serving.entrypoint import build_parser

    args = build_parser().parse_args(
        ["--mode", "transformer", "--model_name", "detector", "--predictor_host",
         "detector-predictor.default", "--http_port", "8080", "--workers", "1"]
    )  # fmt: skip
    assert (args.name, args.predictor_host, args.port, args.workers) == (
        "detector", "detector-predictor.default", 8080, 1,
    )  # fmt: skip
    ours = build_parser().parse_args(["--name", "d", "--predictor-host", "h:1", "--port", "9"])
    assert (ours.name, ours.predictor_host, ours.port) == ("d", "h:1", 9)


def _kserve_transformer_args(container: dict, name: str, predictor_host: str, port: int) -> list[str]:
    """The arguments KServe's controller runs a custom transformer container with
    (``CustomTransformer.GetContainer``): its own, then whichever of these it lacks."""
    args = list(container["args"])
    for flag, value in (("--model_name", name), ("--predictor_host", predictor_host), ("--http_port", port)):
        if flag not in args:
            args += [flag, str(value)]
    return args


def _container_process(
    container: dict, args: list[str], env: dict[str, str], port: int, name: str, log_path: Path
) -> PredictorProcess:
    """Run a manifest's container command the way its image would (``python -m serving ...``)."""
    assert container["command"][:1] == ["python"]
    command = [sys.executable, *container["command"][1:], *args]
    environment = dict(os.environ, **{e["name"]: e["value"] for e in container.get("env", [])}, **env)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT)
    return PredictorProcess(process, f"http://127.0.0.1:{port}", name, env.get("K_REVISION", "v1"))


def test_split_manifests_serve_as_kserve_would_run_them(detect_onnx, predictor, jpegs, predictor_logs):
    """The generated ServingRuntime and transformer containers, run with the arguments and Knative
    revision names KServe gives them, answer like the single predictor and label each response
    with the predictor revision that ran the model."""
    settings = DeploymentSettings("detector-split", "s3://models/detector/v2", transformer=True)
    runtime = serving_runtime_manifest(settings)["spec"]["containers"][0]
    transformer = inference_service_manifest(settings)["spec"]["transformer"]["containers"][0]
    predictor_port, transformer_port = free_port(), free_port()
    predictor_args = [
        {"/mnt/models": str(detect_onnx), "{{.Name}}": settings.name, "8080": str(predictor_port)}.get(a, a)
        for a in runtime["args"]
    ]
    transformer_args = _kserve_transformer_args(
        transformer, settings.name, f"127.0.0.1:{predictor_port}", transformer_port
    )
    revision = {"K_REVISION": "detector-split-predictor-00002"}
    with (
        _container_process(
            runtime,
            predictor_args,
            revision,
            predictor_port,
            settings.name,
            predictor_logs / "split-runtime.log",
        ),
        _container_process(
            transformer,
            transformer_args,
            {"K_REVISION": "detector-split-transformer-00001"},
            transformer_port,
            settings.name,
            predictor_logs / "split-transformer.log",
        ) as transformer_process,
    ):
        url = transformer_process.url
        wait_ready(url, settings.name, 90, transformer_process.process)  # it waits for the predictor
        instances = [{"b64": b64(jpegs[0])}, {"b64": b64(jpegs[1])}]
        direct = v1(predictor.url, instances, LOW_CONF).json()["predictions"]
        response = httpx.post(
            f"{url}/v1/models/{settings.name}:predict",
            json={"instances": instances, "parameters": LOW_CONF},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert [boxes_of(r) for r in body["predictions"]] == [boxes_of(r) for r in direct]
        assert body["model_version"] == "detector-split-predictor-00002"


def test_transformer_waits_for_a_predictor_that_starts_late(detect_onnx, predictor_logs):
    """On a cluster the transformer often starts first; it waits for the predictor's metadata."""
    port = free_port()
    with pytest.raises(NexusError, match=r"within 1 s"):
        fetch_metadata(f"127.0.0.1:{port}", MODEL_NAME, wait_s=1.0)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(fetch_metadata, f"127.0.0.1:{port}", MODEL_NAME, wait_s=90.0)
        time.sleep(1.5)
        assert not waiting.done()
        with PredictorProcess.start(
            detect_onnx,
            port=port,
            log_path=predictor_logs / "late.log",
            extra_args=["--mode", "tensor-predictor"],
        ):
            metadata = waiting.result(timeout=90)
    assert metadata.names == Detector.from_path(detect_onnx).metadata.names


def test_tensor_predictor_sends_its_metadata_only_to_callers_that_differ(split, detect_onnx):
    _, tensor_predictor = split
    names = Detector.from_path(detect_onnx).metadata.names
    batch = np.zeros((1, 3, 64, 64), np.float32)
    tensor = {"name": "input", "shape": list(batch.shape), "datatype": "FP32"}

    def parameters(digest: str | None) -> dict:
        extra = {DIGEST_PARAMETER: digest} if digest else {}
        reply = v2_binary(
            tensor_predictor.url, tensor, batch.tobytes(), {"binary_data_output": True, **extra}
        )
        assert reply.status_code == 200, reply.text
        length = reply.headers["inference-header-content-length"]
        return decode_v2_response(reply.content, length, MODEL_NAME).parameters

    current = parameters(None)
    assert set(current) == {DIGEST_PARAMETER}
    assert parameters(current[DIGEST_PARAMETER]) == current
    other = parameters("0123456789abcdef")
    assert other[DIGEST_PARAMETER] == current[DIGEST_PARAMETER]
    sent = json.loads(other[METADATA_PARAMETER])
    assert {int(k): v for k, v in sent["names"].items()} == names
    assert metadata_digest(sent) == current[DIGEST_PARAMETER]


def test_transformer_decodes_with_the_names_of_the_revision_that_answered(split, jpegs):
    """Behind a canary the transformer's calls reach either predictor revision: the answer carries the
    revision's version and, when its class names differ from the transformer's, the names themselves."""
    _, tensor_predictor = split
    transformer = DetectionTransformer(MODEL_NAME, tensor_predictor.url.removeprefix("http://"), version="tx")
    transformer.load()
    current = transformer.digest
    names = transformer.detector.metadata.names
    stale = dataclasses.replace(
        transformer.detector.metadata, names={k: f"old-{v}" for k, v in names.items()}
    )
    transformer.digest = "0123456789abcdef"  # as if it had started against another revision
    transformer._decoders = {transformer.digest: Detector(_MetadataOnlyBackend(stale))}

    async def one_request() -> dict:
        request = {"instances": [{"b64": b64(jpegs[0])}], "parameters": LOW_CONF}
        try:
            tensor = await transformer.preprocess(request)
            return await transformer.postprocess(await transformer.predict(tensor))
        finally:
            await transformer._client.aclose()

    answer = asyncio.run(one_request())
    assert answer["model_version"] == "t1"  # the predictor's label, not the transformer's "tx"
    detections = answer["predictions"][0]["detections"]
    assert detections and all(d["class_name"] == names[d["class_id"]] for d in detections)
    assert set(transformer._decoders) == {"0123456789abcdef", current}


def test_split_deployment_records_metrics_per_stage(split, jpegs):
    """The transformer times decode, letterbox, the predictor's round trip and NMS and counts outcomes;
    the tensor predictor its queue wait, forward passes and batch sizes."""
    transformer, tensor_predictor = split
    labels = {"model": MODEL_NAME, "version": "t1"}

    def scrape() -> tuple[str, str]:
        return (
            httpx.get(f"{transformer.url}/metrics").text,
            httpx.get(f"{tensor_predictor.url}/metrics").text,
        )

    def stage(text: str, name: str, suffix: str = "count") -> float:
        return metric_value(text, f"nexus_predictor_stage_seconds_{suffix}", **labels, stage=name)

    (t_before, p_before) = scrape()
    instances = [{"b64": b64(jpegs[0])}, {"b64": b64(jpegs[1])}]
    assert v1(transformer.url, instances, LOW_CONF).status_code == 200
    assert v1(transformer.url, [{"b64": b64(b"junk")}]).status_code == 400
    (t_after, p_after) = scrape()

    for name in ("decode", "preprocess", "inference", "postprocess"):  # once per request that got there
        assert stage(t_after, name) - stage(t_before, name) == (2 if name == "decode" else 1), name
        assert stage(t_after, name, "sum") > stage(t_before, name, "sum"), name
    for outcome, added in (("ok", 1), ("invalid", 1), ("error", 0)):
        name = "nexus_predictor_requests_total"
        assert (
            metric_value(t_after, name, **labels, outcome=outcome)
            - metric_value(t_before, name, **labels, outcome=outcome)
            == added
        ), outcome
    assert metric_value(p_after, "nexus_predictor_requests_total", **labels, outcome="ok") == (
        metric_value(p_before, "nexus_predictor_requests_total", **labels, outcome="ok") + 1
    )
    assert stage(p_after, "queue_wait") - stage(p_before, "queue_wait") == 2  # one per image
    assert stage(p_after, "inference") > stage(p_before, "inference")
    assert metric_value(p_after, "nexus_predictor_batch_size_sum", **labels) == (
        metric_value(p_before, "nexus_predictor_batch_size_sum", **labels) + 2
    )


def test_split_deployment_serves_segmentation_masks_like_the_single_predictor(
    segment_onnx, segment_predictor, jpegs, predictor_logs
):
    """Protos travel back as a binary tensor; the transformer's masks are the single predictor's."""
    with split_processes(segment_onnx, "seg1", predictor_logs, prefix="seg-") as (transformer, _):
        instances = [{"b64": b64(jpegs[0])}, {"b64": b64(jpegs[1])}]
        direct = v1(segment_predictor.url, instances, LOW_CONF).json()["predictions"]
        response = v1(transformer.url, instances, LOW_CONF)
    assert response.status_code == 200, response.text
    split = response.json()["predictions"]
    assert [boxes_of(r) for r in split] == [boxes_of(r) for r in direct]
    assert any(r["detections"] for r in split)
    for ours, theirs in zip(split, direct, strict=True):
        assert [d["mask"] for d in ours["detections"]] == [d["mask"] for d in theirs["detections"]]
