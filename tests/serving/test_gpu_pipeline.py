"""The GPU request path (torch decode + letterbox + TorchBackend), checked on CPU tensors here and on
CUDA where a GPU is visible."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from serving_client import b64

from nexus.errors import ImageDecodeError
from nexus.vision.letterbox import letterbox_batch
from nexus.vision.postprocess import PostprocessOptions


@pytest.mark.parametrize(("height", "width"), [(96, 96), (480, 640), (721, 1280), (50, 300)])
@pytest.mark.parametrize("auto", [False, True])
def test_torch_letterbox_matches_the_cpu_letterbox(height, width, auto):
    from nexus.serving.gpu_pipeline import letterbox_tensors

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (7, 7), 0)
    expected, expected_geometry = letterbox_batch([image], (320, 320), auto=auto)
    tensor = torch.from_numpy(np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1)))
    got, geometry = letterbox_tensors([tensor], (320, 320), auto=auto)
    assert geometry == expected_geometry
    assert got.shape == expected.shape
    difference = np.abs(got.numpy() - expected)
    assert difference.mean() < 1.5 / 255  # interpolation rounding differs from OpenCV by a level or so


def test_letterbox_of_a_mixed_batch_equals_each_image_alone():
    """Same-shape images are resized together (in chunks): each must come out as it would alone."""
    from nexus.serving.gpu_pipeline import LETTERBOX_CHUNK, letterbox_tensors

    rng = np.random.default_rng(1)
    shapes = [(72, 128)] * (LETTERBOX_CHUNK + 3) + [(96, 96), (50, 300), (80, 160), (96, 96)]
    order = rng.permutation(len(shapes))  # a shape's images are not neighbours in the batch
    images = [torch.from_numpy(rng.integers(0, 255, (3, *shapes[i]), dtype=np.uint8)) for i in order]
    batch, geometries = letterbox_tensors(images, (160, 160), dtype=torch.float16)
    for index, image in enumerate(images):
        alone, (geometry,) = letterbox_tensors([image], (160, 160), dtype=torch.float16)
        assert geometries[index] == geometry
        assert torch.equal(batch[index], alone[0]), f"image {index} of shape {tuple(image.shape)}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_candidate_columns_leave_decode_predictions_unchanged(dtype):
    """Only candidate columns leave the device, and NMS on them gives exactly the whole output's rows."""
    from nexus.serving.gpu_pipeline import candidate_columns
    from nexus.vision.postprocess import decode_predictions

    rng = np.random.default_rng(2)
    num_classes, anchors = 3, 600
    predictions = np.empty((5, 4 + num_classes + 2, anchors), np.float32)
    predictions[:, :2] = rng.uniform(0, 160, (5, 2, anchors))
    predictions[:, 2:4] = rng.uniform(4, 40, (5, 2, anchors))
    predictions[:, 4 : 4 + num_classes] = rng.random((5, num_classes, anchors)) ** 3
    predictions[:, 4 + num_classes :] = rng.normal(size=(5, 2, anchors))  # extra (mask) channels
    # scores on either side of a threshold that float32 cannot hold exactly
    predictions[:, 4, 0] = np.float32(0.3)
    predictions[:, 4, 1] = np.nextafter(np.float32(0.3), np.float32(1))
    options = [
        PostprocessOptions(conf_threshold=0.3),
        PostprocessOptions(conf_threshold=0.25, classes=(1,)),
        PostprocessOptions(conf_threshold=0.0, max_detections=7),
        PostprocessOptions(conf_threshold=1.0),
        PostprocessOptions(conf_threshold=0.5, agnostic=True, iou_threshold=0.3),
    ]
    tensor = torch.from_numpy(predictions).to(dtype)
    whole = tensor.float().numpy()
    candidates = candidate_columns(tensor, num_classes, options)
    assert [c.shape[1] for c in candidates] == [whole.shape[1]] * 5
    assert candidates[0].shape[2] < anchors and candidates[3].shape[2] == 0
    assert candidates[2].shape[2] == anchors
    for index, (columns, image_options) in enumerate(zip(candidates, options, strict=True)):
        got = decode_predictions(columns, num_classes, image_options)[0]
        want = decode_predictions(whole[index : index + 1], num_classes, image_options)[0]
        np.testing.assert_array_equal(got, want)
    assert len(decode_predictions(candidates[0], num_classes, options[0])[0]) > 0


def test_jpeg_decode_on_cpu_tensor_matches_opencv(jpegs):
    from nexus.serving.gpu_pipeline import decode_jpeg_tensor

    tensor = decode_jpeg_tensor(jpegs[0], device="cpu")
    reference = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert tensor.shape == (3, *reference.shape[:2]) and tensor.dtype == torch.uint8
    assert np.abs(tensor.permute(1, 2, 0).numpy().astype(int) - reference).mean() < 2


@pytest.mark.parametrize(
    ("data", "word"),
    [(b"", "empty"), (b"\xff\xd8\xff" + b"\x00" * 64, "decodable"), (b"not an image", "decodable")],
)
def test_jpeg_decode_errors(data, word):
    from nexus.serving.gpu_pipeline import decode_jpeg_tensor

    with pytest.raises(ImageDecodeError, match=word):
        decode_jpeg_tensor(data, device="cpu")


def test_pipeline_matches_the_detector_on_cpu(detect_weights, jpegs):
    from nexus.inference.detector import Detector
    from nexus.serving.gpu_pipeline import GpuPipeline

    detector = Detector.from_path(detect_weights, device="cpu")
    pipeline = GpuPipeline(detector)
    options = [PostprocessOptions(conf_threshold=0.001, max_detections=5)] * 3
    images = [pipeline.decode_jpeg(data) for data in jpegs[:2]]
    images.append(cv2.imdecode(np.frombuffer(jpegs[2], np.uint8), cv2.IMREAD_COLOR))  # BGR array too
    got = pipeline.run(images, options)
    decoded = [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for data in jpegs[:3]]
    want = detector.predict_arrays(decoded, options)
    assert [len(g) for g in got] == [len(w) for w in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.confidence, w.confidence, atol=2e-3)


@pytest.mark.gpu
def test_gpu_pipeline_on_cuda(detect_weights, jpegs):
    from nexus.inference.detector import Detector
    from nexus.serving.gpu_pipeline import GpuPipeline

    detector = Detector.from_path(detect_weights, device="0")
    pipeline = GpuPipeline(detector)
    images = [pipeline.decode_jpeg(data) for data in jpegs[:4]]
    assert all(image.is_cuda for image in images)
    results = pipeline.run(images, [PostprocessOptions(conf_threshold=0.001)] * 4)
    cpu = Detector.from_path(detect_weights, device="cpu").predict(jpegs[:4], conf=0.001)
    assert len(results) == 4
    for got, want in zip(results, cpu, strict=True):
        assert abs(len(got) - len(want)) <= max(2, len(want) // 10)  # FP16 moves a few borderline scores


@pytest.mark.parametrize("gpu_device", [pytest.param("0", marks=pytest.mark.gpu), "cpu"])
def test_predictor_uses_the_torch_path_for_jpegs(detect_weights, jpegs, gpu_device):
    """The predictor's torch request path: JPEGs decoded to tensors, batched, run through ``GpuPipeline``
    (on CPU tensors here by attaching the pipeline by hand; on CUDA the predictor does it itself)."""
    import asyncio

    from nexus.serving.config import PredictorConfig
    from nexus.serving.gpu_pipeline import GpuPipeline
    from nexus.serving.predictor import DetectionPredictor

    predictor = DetectionPredictor(PredictorConfig(model_uri=str(detect_weights), device=gpu_device))
    predictor.load()
    if gpu_device == "cpu":
        assert predictor.gpu_pipeline is None
        predictor.gpu_pipeline = GpuPipeline(predictor.detector)
    body = {"instances": [{"b64": b64(j)} for j in jpegs[:3]], "parameters": {"confidence": 0.001}}

    async def call():
        try:
            return await predictor(body, {})
        finally:
            predictor.stop()

    response, _ = asyncio.run(call())
    predictions = response["predictions"]
    assert [p["image_shape"] for p in predictions] == [[96, 96]] * 3
    reference = predictor.detector.predict(jpegs[:3], conf=0.001)
    assert [p["num_detections"] for p in predictions] == [len(r) for r in reference]


@pytest.fixture(scope="module")
def gpu_benchmark():
    """``benchmarks/serving_gpu.py`` as a module (benchmarks/ is not a package)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "serving_gpu.py"
    spec = importlib.util.spec_from_file_location("serving_gpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_script_runs_end_to_end_on_the_cpu(gpu_benchmark, capsys):
    """The GPU session is short: the script's whole path (untrained YOLOv8n built offline, nvJPEG-style
    decode, pipeline, forward, Ultralytics, verdict) must already work; here on the CPU."""
    gpu_benchmark.main(["--device", "cpu", "--batches", "1", "3", "--seconds", "0.05", "--frames", "2"])
    out = capsys.readouterr().out
    assert "yolov8n-untrained.pt" in out and "input (640, 640)" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["1", "3"]
    assert all(float(value.rstrip("x")) > 0 for row in rows for value in row[1:])
    assert "cpu smoke run" in out and out.count("target >=") == 3


@pytest.mark.parametrize(
    ("e2e", "fwd", "ultra", "met"),
    [
        (4500, 6000, 700, [True, True, True]),
        (3900, 6000, 700, [False, True, True]),
        (4500, 8000, 700, [True, False, True]),
        (4500, 6000, 950, [True, True, False]),
    ],
)
def test_gpu_benchmark_verdict_reads_the_best_batch(gpu_benchmark, e2e, fwd, ultra, met):
    rows = [
        {"batch": 8, "e2e": 1000, "fwd": 1200, "ultra": 300},
        {"batch": 64, "e2e": e2e, "fwd": fwd, "ultra": ultra},
    ]
    lines = gpu_benchmark.verdict(rows, on_gpu=True)
    assert [line.endswith(": met") for line in lines] == met
    assert "batch 64" in lines[0]
