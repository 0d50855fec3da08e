"""Real servers for the serving tests: predictor processes and a router thread on free localhost ports."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def _import_kserve_without_pytest_flags() -> None:
    """kserve parses ``sys.argv`` when first imported; show it an empty command line."""
    saved, sys.argv = sys.argv, sys.argv[:1]
    try:
        import kserve.model_server  # noqa: F401
    finally:
        sys.argv = saved


_import_kserve_without_pytest_flags()


@pytest.fixture(scope="session")
def predictor_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("predictor-logs")


@pytest.fixture(scope="session")
def predictor(detect_onnx, predictor_logs) -> Iterator:
    """The champion: the detect ONNX model, batching up to 8 images within 20 ms."""
    from nexus.serving.launcher import PredictorProcess

    with PredictorProcess.start(
        detect_onnx, version="v1", max_batch_size=8, max_delay_ms=20, log_path=predictor_logs / "v1.log"
    ) as process:
        yield process


@pytest.fixture(scope="session")
def challenger(detect_onnx, predictor_logs) -> Iterator:
    from nexus.serving.launcher import PredictorProcess

    with PredictorProcess.start(
        detect_onnx, version="v2", max_batch_size=4, max_delay_ms=2, log_path=predictor_logs / "v2.log"
    ) as process:
        yield process


@pytest.fixture(scope="session")
def segment_predictor(segment_onnx, predictor_logs) -> Iterator:
    from nexus.serving.launcher import PredictorProcess

    with PredictorProcess.start(
        segment_onnx, version="seg1", max_batch_size=4, max_delay_ms=2, log_path=predictor_logs / "seg.log"
    ) as process:
        yield process


@pytest.fixture(scope="session")
def jpegs(val_images) -> list[bytes]:
    """Real JPEG bytes of the validation images."""
    import cv2

    out = []
    for path in val_images[:8]:
        ok, data = cv2.imencode(".jpg", cv2.imread(str(path)), [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        out.append(data.tobytes())
    return out


@pytest.fixture(scope="session")
def large_jpegs(jpegs) -> list[bytes]:
    """The validation images at 4x their size (384 px for the 96 px models): they decode at 1/4."""
    import cv2
    import numpy as np

    out = []
    for data in jpegs[:3]:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        large = cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
        out.append(cv2.imencode(".jpg", large, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
    return out


@pytest.fixture
def kube_api(tmp_path, monkeypatch):
    """A Kubernetes API stand-in on a free port, with KUBECONFIG pointing at it (namespace vision)."""
    from kube_api import kube_api_stand_in

    with kube_api_stand_in(tmp_path, monkeypatch) as stand_in:
        yield stand_in
