"""Batch shards: one batch split across several ONNX Runtime sessions gives the same outputs, and
concurrent callers each run in their own shard session."""

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


class GatedSession(RecordingSession):
    """A recording session whose runs wait at a barrier: they only pass when ``parties`` run at once."""

    def __init__(self, session, calls, barrier: threading.Barrier) -> None:
        super().__init__(session, calls)
        self.barrier = barrier

    def run(self, output_names, feeds):
        self.barrier.wait(timeout=30)  # a BrokenBarrierError if the runs were serialized
        return super().run(output_names, feeds)


@pytest.mark.parametrize(("spread", "slices_per_call"), [(False, 1), (True, 2)])
def test_unspread_calls_run_side_by_side_in_their_own_sessions(
    detect_onnx, detect_baseline, val_images, spread, slices_per_call
):
    """Two callers with ``spread=False`` each hold one shard at once; ``spread=True`` from one caller
    takes both (so a second caller waits)."""
    backend = OnnxRuntimeBackend(detect_onnx, batch_shards=2)
    assert backend.concurrent_batches == 2
    calls: list[tuple[int, int]] = []
    barrier = threading.Barrier(2)
    backend._shard_sessions = [GatedSession(s, calls, barrier) for s in backend._shard_sessions]
    batches = [letterboxed(detect_baseline, val_images[i:], 4) for i in range(2)]
    callers = 2 if not spread else 1
    results: list = [None] * callers

    def call(index: int) -> None:
        results[index] = backend.infer(batches[index], spread=spread)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not barrier.broken
    assert len(calls) == callers * slices_per_call
    assert sorted(size for _, size in calls) == ([4, 4] if not spread else [2, 2])
    for batch, (predictions, _) in zip(batches, results, strict=False):
        expected, _ = detect_baseline.backend.infer(batch)
        np.testing.assert_allclose(predictions, expected, rtol=1e-4, atol=1e-3)
    assert sorted(backend._free_shards) == [0, 1]  # every shard was given back


def test_a_single_image_takes_the_main_session_only_when_every_shard_is_free(
    detect_onnx, detect_baseline, val_images
):
    backend = OnnxRuntimeBackend(detect_onnx, batch_shards=2)
    calls: list[tuple[int, int]] = []
    backend._shard_sessions = [RecordingSession(s, calls) for s in backend._shard_sessions]
    image = letterboxed(detect_baseline, val_images, 1)
    expected, _ = detect_baseline.backend.infer(image)
    predictions, _ = backend.infer(image)  # all free: the main session with every thread
    assert calls == []
    backend._free_shards.remove(0)  # another batch holds shard 0
    predictions_busy, _ = backend.infer(image)
    assert calls == [(threading.get_ident(), 1)]  # ran in the free shard session, not the main one
    for found in (predictions, predictions_busy):
        np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-3)
    assert backend._free_shards == [1]


def test_a_call_waits_for_a_shard_when_all_are_busy(detect_onnx, detect_baseline, val_images):
    backend = OnnxRuntimeBackend(detect_onnx, batch_shards=2)
    taken = backend._take_shards(2)
    batch = letterboxed(detect_baseline, val_images, 2)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (backend.infer(batch, spread=False), done.set()))
    thread.start()
    assert not done.wait(0.3)  # no free shard: the call waits
    with backend._shard_freed:
        backend._free_shards.extend(taken)
        backend._shard_freed.notify_all()
    assert done.wait(30)
    thread.join()


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
