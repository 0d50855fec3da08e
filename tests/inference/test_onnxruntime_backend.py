"""Batch shards: one batch split across several ONNX Runtime sessions gives the same outputs."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from nexus.errors import ModelLoadError
from nexus.inference.backends.onnxruntime_backend import OnnxRuntimeBackend
from nexus.inference.detector import Detector, load_backend
from nexus.vision.image_io import load_image


class RecordingSession:
    """Wraps a real session and records which thread ran a slice of how many images."""

    def __init__(self, session, calls: list[tuple[int, int]]) -> None:
        self.session = session
        self.calls = calls

    def run(self, output_names, feeds):
        self.calls.append((threading.get_ident(), len(next(iter(feeds.values())))))
        return self.session.run(output_names, feeds)


def letterboxed(detector: Detector, paths, count: int) -> np.ndarray:
    images = [load_image(str(paths[i % len(paths)])) for i in range(count)]
    batch, _ = detector.preprocess(images)
    return batch


@pytest.fixture(scope="module")
def detect_baseline(detect_onnx):
    return Detector.from_path(detect_onnx)


@pytest.mark.parametrize(
    ("shards", "batch_size", "slices"),
    [
        (2, 2, [1, 1]),
        (2, 5, [3, 2]),
        (3, 4, [2, 1, 1]),
        (4, 3, [1, 1, 1]),  # fewer images than shards: one image per shard, the rest idle
        (3, 1, []),  # a single image runs in the main session
    ],
)
def test_sharded_batches_equal_one_session(
    detect_onnx, detect_baseline, val_images, shards, batch_size, slices
):
    batch = letterboxed(detect_baseline, val_images, batch_size)
    expected, _ = detect_baseline.backend.infer(batch)
    backend = OnnxRuntimeBackend(detect_onnx, batch_shards=shards)
    calls: list[tuple[int, int]] = []
    backend._shard_sessions = [RecordingSession(s, calls) for s in backend._shard_sessions]
    predictions, protos = backend.infer(batch)
    assert protos is None
    assert predictions.shape == expected.shape
    np.testing.assert_allclose(predictions, expected, rtol=1e-4, atol=1e-3)
    assert sorted(size for _, size in calls) == sorted(slices)
    if len(slices) > 1:  # the caller runs the first slice while pool threads run the others
        caller = threading.get_ident()
        assert [size for thread, size in calls if thread == caller] == slices[:1]
        assert len({thread for thread, _ in calls}) >= 2


def test_sharded_segmentation_keeps_prototypes_in_order(segment_onnx, val_images):
    baseline = Detector.from_path(segment_onnx)
    batch = letterboxed(baseline, val_images, 5)
    expected_predictions, expected_protos = baseline.backend.infer(batch)
    predictions, protos = OnnxRuntimeBackend(segment_onnx, batch_shards=2).infer(batch)
    assert protos is not None and expected_protos is not None
    np.testing.assert_allclose(predictions, expected_predictions, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(protos, expected_protos, rtol=1e-4, atol=1e-3)


def test_sharded_detector_gives_the_same_detections(detect_onnx, detect_baseline, val_images):
    paths = [str(p) for p in val_images[:6]]
    expected = detect_baseline.predict(paths, conf=0.001, batch_size=6)
    sharded = Detector.from_path(detect_onnx, batch_shards=2).predict(paths, conf=0.001, batch_size=6)
    for a, b in zip(expected, sharded, strict=True):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)
        np.testing.assert_array_equal(a.class_id, b.class_id)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_shards": 0}, ValueError, "batch_shards must be at least 1"),
        ({"batch_shards": 2, "device": "cuda:0"}, ValueError, "applies to the CPU only"),
    ],
)
def test_bad_shard_settings_are_refused(detect_onnx, kwargs, error, message):
    with pytest.raises(error, match=message):
        OnnxRuntimeBackend(detect_onnx, **kwargs)


def test_shards_are_refused_for_other_model_formats(detect_weights):
    with pytest.raises(ModelLoadError, match="apply to ONNX models on the CPU") as raised:
        load_backend(detect_weights, batch_shards=2)
    assert detect_weights.name in str(raised.value)


def test_threads_stop_spinning_after_each_run(detect_onnx):
    """A pool spinning on after a run takes a core from the code answering the request."""
    backend = OnnxRuntimeBackend(detect_onnx, batch_shards=2)
    for session in [backend.session, *backend._shard_sessions]:
        options = session.get_session_options()
        assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    for session in backend._shard_sessions:  # shards never spin: the one done first must not burn the core
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
