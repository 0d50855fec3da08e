from __future__ import annotations

import numpy as np
import pytest

from nexus.errors import ModelLoadError, NexusError
from nexus.inference.detector import Detector, inference_device


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("model.onnx", b"not a model at all", "not a loadable ONNX model"),
        ("model.pt", b"plain text", "not an Ultralytics/PyTorch checkpoint"),
        ("model.h5", b"x", "unknown model format"),
        ("model.engine", b"garbage", "not a NexusAI TensorRT engine"),
    ],
)
def test_files_that_are_not_models_give_a_clear_error(tmp_path, filename, content, message):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message) as error:
        Detector.from_path(path)
    assert filename in str(error.value)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelLoadError, match="no such model file"):
        Detector.from_path(tmp_path / "nope.onnx")


def test_batched_prediction_equals_one_by_one(detect_onnx, val_images):
    detector = Detector.from_path(detect_onnx)
    single = detector.predict([str(p) for p in val_images[:6]], conf=0.01)
    batched = detector.predict([str(p) for p in val_images[:6]], conf=0.01, batch_size=6)
    for a, b in zip(single, batched, strict=True):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)


def test_options_filter_classes_and_cap_detections(detect_onnx, val_images):
    detector = Detector.from_path(detect_onnx)
    everything = detector.predict(str(val_images[0]), conf=0.001)[0]
    assert len(everything) > 2
    capped = detector.predict(str(val_images[0]), conf=0.001, max_det=2)[0]
    assert len(capped) == 2
    only = detector.predict(str(val_images[0]), conf=0.001, classes=[1])[0]
    assert set(only.class_id.tolist()) <= {1}
    assert only.class_name and set(only.class_name) <= {detector.names[1]}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(conf=2.0), "conf_threshold"),
        (dict(imgsz=0), "imgsz"),
        (dict(imgsz=[64, 64, 64]), r"imgsz must be a whole number or \[height, width\], got \[64, 64, 64\]"),
        (dict(imgsz="640"), "imgsz must be a whole number or"),
        (dict(imgsz=64.5), "imgsz must be a whole number or"),
        (dict(imgsz=[]), "imgsz must be a whole number or"),
        (dict(imgsz=True), "imgsz must be a whole number or"),
    ],
)
def test_bad_options_raise_nexus_errors(detect_onnx, val_images, kwargs, message):
    with pytest.raises(NexusError, match=message):
        Detector.from_path(detect_onnx).predict(str(val_images[0]), **kwargs)


@pytest.mark.parametrize("imgsz", [64, [64], (64, 64), np.int64(64), np.array([64, 64])])
def test_imgsz_spellings_agree(detect_onnx, val_images, imgsz):
    detector = Detector.from_path(detect_onnx)
    reference = detector.predict(str(val_images[0]), conf=0.01, imgsz=64)[0]
    assert np.array_equal(
        detector.predict(str(val_images[0]), conf=0.01, imgsz=imgsz)[0].xyxy, reference.xyxy
    )


def test_accepts_bytes_and_arrays(detect_onnx, val_images):
    detector = Detector.from_path(detect_onnx)
    from_path = detector.predict(str(val_images[1]), conf=0.01)[0]
    from_bytes = detector.predict(val_images[1].read_bytes(), conf=0.01)[0]
    import cv2

    from_array = detector.predict(cv2.imread(str(val_images[1])), conf=0.01)[0]
    assert len(from_path) == len(from_bytes) == len(from_array)


def test_onnx_backend_does_not_import_torch(detect_onnx, val_images):
    import subprocess
    import sys

    code = (
        "import sys; from nexus.inference.detector import Detector; "
        f"d = Detector.from_path({str(detect_onnx)!r}); d.predict({str(val_images[0])!r}); "
        "bad = [m for m in ('torch', 'ultralytics') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("device", "expected"),
    [("cpu", "cpu"), (" CPU ", "cpu"), ("0", "0"), ("cuda", "0"), ("cuda:1", "1"), ("CUDA:01", "1")],
)
def test_inference_device_spellings(device, expected):
    assert inference_device(device) == expected


@pytest.mark.parametrize("device", ["foo", "gpu", "0,1", "cuda:x", "-1", "", "١"])
def test_a_device_that_is_not_one_is_refused_before_loading(detect_onnx, device):
    with pytest.raises(ModelLoadError, match=f"device {device!r} is not a device; pass 'cpu' or one CUDA"):
        Detector.from_path(detect_onnx, device=device)


def test_predict_cli_names_a_bad_device(detect_onnx, val_images, capsys):
    from nexus.cli.main import main

    assert main(["predict", str(detect_onnx), str(val_images[0]), "--device", "foo"]) == 2
    assert "device 'foo' is not a device" in capsys.readouterr().err


def test_gpu_providers_run_on_the_device_asked_for(monkeypatch):
    from nexus.inference.backends import onnxruntime_backend

    monkeypatch.setattr(
        onnxruntime_backend.ort,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert onnxruntime_backend.select_providers("1") == [
        ("CUDAExecutionProvider", {"device_id": "1"}),
        "CPUExecutionProvider",
    ]
    assert onnxruntime_backend.select_providers("cpu") == ["CPUExecutionProvider"]
