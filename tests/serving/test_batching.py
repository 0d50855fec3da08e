"""Dynamic batching: concurrent images share one forward pass; a bad image fails only itself."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from serving_client import MODEL_NAME, b64

from nexus.cpu import cpu_count
from nexus.serving.batching import DynamicBatcher
from nexus.serving.config import BatchingConfig, PredictorConfig
from nexus.vision.postprocess import PostprocessOptions


@pytest.fixture(scope="module")
def detector(detect_onnx):
    from nexus.inference.detector import Detector

    return Detector.from_path(detect_onnx)


@pytest.fixture(scope="module")
def images(val_images) -> list[np.ndarray]:
    return [cv2.imread(str(path)) for path in val_images[:8]]


def run_concurrently(batcher: DynamicBatcher, items: list[tuple[np.ndarray, PostprocessOptions]]) -> list:
    async def main() -> list:
        results = await asyncio.gather(
            *(batcher.submit(image, options) for image, options in items), return_exceptions=True
        )
        batcher.close()
        return results

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("max_batch_size", "count", "expected_sizes"),
    [(4, 8, [4, 4]), (8, 5, [5]), (1, 3, [1, 1, 1]), (3, 7, [3, 3, 1])],
)
def test_batches_fill_up_to_the_limit(detector, images, max_batch_size, count, expected_sizes):
    sizes: list[int] = []

    def run(batch, options):
        sizes.append(len(batch))
        return detector.predict_arrays(batch, options)

    config = BatchingConfig(max_batch_size=max_batch_size, max_delay_ms=200)
    items = [(images[i % len(images)], PostprocessOptions(conf_threshold=0.001)) for i in range(count)]
    results = run_concurrently(DynamicBatcher(run, config), items)
    assert sizes == expected_sizes
    singles = detector.predict_arrays([image for image, _ in items], PostprocessOptions(conf_threshold=0.001))
    for got, want in zip(results, singles, strict=True):
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-3)


def test_per_image_options_inside_one_batch(detector, images):
    options = [PostprocessOptions(conf_threshold=0.001, max_detections=k) for k in (1, 2, 3, 300)]
    items = list(zip(images[:4], options, strict=True))
    results = run_concurrently(
        DynamicBatcher(detector.predict_arrays, BatchingConfig(max_batch_size=4, max_delay_ms=200)), items
    )
    assert [len(r) for r in results][:3] == [1, 2, 3]
    assert len(results[3]) > 3


def test_a_bad_image_fails_alone(detector, images):
    bad = np.zeros((0, 10, 3), np.uint8)  # passes the queue, breaks the letterbox
    items = [
        (images[0], PostprocessOptions()),
        (bad, PostprocessOptions()),
        (images[1], PostprocessOptions()),
    ]
    results = run_concurrently(
        DynamicBatcher(detector.predict_arrays, BatchingConfig(max_batch_size=3, max_delay_ms=200)), items
    )
    assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)
    assert isinstance(results[1], Exception)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_size": 5000}, "max_batch_size"),
        ({"max_delay_ms": -1}, "max_delay_ms"),
        ({"shards": 0}, "batch shards"),
        ({"shards": 65}, "batch shards"),
    ],
)
def test_batching_config_is_validated(kwargs, word):
    with pytest.raises(ValueError, match=word):
        BatchingConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"model_uri": " "}, "model_uri"),
        ({"model_name": "a/b"}, "model_name"),
        ({"imgsz": 0}, "imgsz"),
        ({"max_images_per_request": 0}, "max_images_per_request"),
        ({"version": ""}, "version"),
    ],
)
def test_predictor_config_is_validated(kwargs, word):
    with pytest.raises(ValueError, match=word):
        PredictorConfig(**{"model_uri": "m.onnx", **kwargs})


@pytest.mark.parametrize(
    ("shards", "max_batch_size", "cpus", "expected"),
    [
        (None, 8, 2, 2),  # one per core
        (None, 8, 16, 8),  # never more than a batch holds
        (None, 1, 16, 1),  # batching off: nothing to split
        (3, 8, 2, 3),  # an explicit count wins
    ],
)
def test_batch_shards_resolve_per_machine(shards, max_batch_size, cpus, expected):
    config = BatchingConfig(max_batch_size=max_batch_size, shards=shards)
    assert config.resolve_shards(cpus) == expected


@pytest.mark.parametrize(
    ("shards", "model", "device", "expected"),
    [
        (None, "best.onnx", "cpu", 2),  # one per core
        (None, "best.pt", "cpu", 1),  # shards are ONNX Runtime sessions
        (None, "best.onnx", "cuda:0", 1),  # a GPU runs the whole batch in one pass
        (4, "best.onnx", "cpu", 4),  # an explicit count wins
    ],
)
def test_batch_shards_per_model_and_device(shards, model, device, expected):
    config = BatchingConfig(max_batch_size=8, shards=shards)
    assert config.shards_for(Path(model), device, cpus=2) == expected


@pytest.mark.parametrize(
    ("batching", "expected"),
    [
        (BatchingConfig(max_batch_size=8), min(cpu_count(), 8)),
        (BatchingConfig(max_batch_size=1), 1),
        (BatchingConfig(max_batch_size=8, shards=3), 3),
    ],
)
def test_predictor_loads_the_resolved_shards(detect_onnx, batching, expected):
    from nexus.serving.predictor import DetectionPredictor

    model = DetectionPredictor(PredictorConfig(model_uri=str(detect_onnx), batching=batching, warmup=False))
    model.load()
    try:
        assert model.describe()["batch_shards"] == expected
        assert len(model.detector.backend._shard_sessions) == (expected if expected > 1 else 0)
        assert model.batcher.concurrency == expected  # one batch at a time per shard session
        assert model._decode_pool._max_workers == cpu_count()  # one decoding thread per core
    finally:
        model.stop()


def test_concurrent_http_requests_are_batched(predictor, jpegs):
    """16 concurrent requests against a predictor batching up to 8 within 20 ms: batches > 1 happen."""

    def multi_image_batches() -> float:
        """Batches with more than one image so far (histogram count minus the ``le=1`` bucket)."""
        samples = {}
        for line in httpx.get(f"{predictor.url}/metrics").text.splitlines():
            if line.startswith("nexus_predictor_batch_size") and 'version="v1"' in line:
                key = "single" if 'le="1.0"' in line else "count" if "_count" in line else None
                if key:
                    samples[key] = float(line.split()[-1])
        return samples.get("count", 0.0) - samples.get("single", 0.0)

    before = multi_image_batches()

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            url = f"{predictor.url}/v1/models/{MODEL_NAME}:predict"
            return await asyncio.gather(
                *(
                    client.post(url, json={"instances": [{"b64": b64(jpegs[i % len(jpegs)])}]})
                    for i in range(16)
                )
            )

    assert all(r.status_code == 200 for r in asyncio.run(fire()))
    assert multi_image_batches() > before  # at least one batch held more than one image


def test_cpu_serving_path_imports_neither_torch_nor_ultralytics(detect_onnx, jpegs):
    script = textwrap.dedent(
        f"""
        import asyncio, base64, sys
        sys.argv = sys.argv[:1]
        from nexus.serving.config import PredictorConfig
        from nexus.serving.predictor import DetectionPredictor
        from nexus.serving import server, router, launcher, protocol, manifests  # noqa: F401
        model = DetectionPredictor(PredictorConfig(model_uri={str(detect_onnx)!r}))
        model.load()
        body = {{"instances": [{{"b64": {b64(jpegs[0])!r}}}]}}
        response, _ = asyncio.run(model(body, {{}}))
        assert len(response["predictions"]) == 1
        heavy = sorted(m for m in ("torch", "torchvision", "ultralytics") if m in sys.modules)
        print("HEAVY", heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HEAVY []" in out.stdout


def test_a_lone_image_does_not_wait_for_a_batch(detector, images):
    sizes: list[int] = []

    def run(batch, options):
        sizes.append(len(batch))
        return detector.predict_arrays(batch, options)

    async def main() -> None:
        # a 10 s delay would make this call hang if the batcher waited while nothing else is coming
        batcher = DynamicBatcher(run, BatchingConfig(max_batch_size=8, max_delay_ms=10_000))
        await asyncio.wait_for(batcher.submit(images[0], PostprocessOptions()), timeout=5)
        batcher.close()

    asyncio.run(main())
    assert sizes == [1]


def test_announced_images_are_waited_for_and_share_the_batch(detector, images):
    sizes: list[int] = []

    def run(batch, options):
        sizes.append(len(batch))
        return detector.predict_arrays(batch, options)

    async def main() -> None:
        batcher = DynamicBatcher(run, BatchingConfig(max_batch_size=8, max_delay_ms=10_000))
        batcher.expect(2)  # two requests are decoding

        async def late() -> None:
            await asyncio.sleep(0.05)  # still decoding when the first image is queued
            await batcher.submit(images[1], PostprocessOptions())

        await asyncio.wait_for(
            asyncio.gather(batcher.submit(images[0], PostprocessOptions()), late()), timeout=30
        )
        batcher.expect(1)
        batcher.expect(-1)  # a request that failed to decode withdraws its announcement
        await asyncio.wait_for(batcher.submit(images[2], PostprocessOptions()), timeout=30)
        batcher.close()

    asyncio.run(main())
    assert sizes == [2, 1]


def test_concurrent_batches_run_side_by_side(detector, images):
    """With ``concurrency=2`` one worker gathers the next batch while the other runs its own; the
    batch closed while others still wait keeps to one share of the cores (``spread=False``), the
    last one may spread."""
    calls: list[tuple[int, int, bool]] = []
    barrier = threading.Barrier(2)

    def run(batch, options, spread):
        calls.append((threading.get_ident(), len(batch), spread))
        barrier.wait(timeout=30)  # broken unless both batches run at the same time
        return detector.predict_arrays(batch, options)

    items = [(images[i], PostprocessOptions(conf_threshold=0.001)) for i in range(8)]
    batcher = DynamicBatcher(run, BatchingConfig(max_batch_size=4, max_delay_ms=200), concurrency=2)
    results = run_concurrently(batcher, items)
    assert not barrier.broken
    assert [(size, spread) for _, size, spread in calls] == [(4, False), (4, True)]
    assert len({thread for thread, _, _ in calls}) == 2
    singles = detector.predict_arrays([image for image, _ in items], PostprocessOptions(conf_threshold=0.001))
    for got, expected in zip(results, singles, strict=True):
        np.testing.assert_allclose(got.xyxy, expected.xyxy, atol=1e-3)


def test_batcher_concurrency_is_validated(detector):
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        DynamicBatcher(detector.predict_arrays, BatchingConfig(), concurrency=0)


def test_a_worker_that_ended_is_replaced_without_stopping_the_others(detector, images):
    def run(batch, options, spread):
        return detector.predict_arrays(batch, options)

    async def main() -> None:
        batcher = DynamicBatcher(run, BatchingConfig(max_batch_size=2, max_delay_ms=50), concurrency=2)
        await batcher.submit(images[0], PostprocessOptions())
        first, second = batcher._workers
        first.cancel()
        await asyncio.sleep(0)
        results = await asyncio.wait_for(
            asyncio.gather(*(batcher.submit(image, PostprocessOptions()) for image in images[:4])), 30
        )
        assert len(results) == 4
        assert second in batcher._workers and first not in batcher._workers
        assert len(batcher._workers) == 2 and not any(worker.done() for worker in batcher._workers)
        batcher.close()

    asyncio.run(main())
