"""Dynamic batching: gather concurrent images into one forward pass, answer each request alone.

Images wait in an asyncio queue; a worker takes up to ``max_batch_size`` of them, or whatever
arrived within ``max_delay_ms`` of the first. It waits only while more images are on their way
(announced with ``expect`` by requests still decoding), so a lone request never pays the delay.
Each batch runs in an inference thread (with per-image ``PostprocessOptions``) and resolves each
image's future. With ``concurrency`` > 1 (a backend with several ONNX Runtime sessions) up to that
many batches run at once: one worker gathers the next batch while the others run theirs, and a
batch that leaves nothing else waiting may spread over every idle session. If a batch fails, its
images are retried one by one, so a bad input fails only its own request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from nexus.detections import Detections
from nexus.serving.config import BatchingConfig
from nexus.vision.postprocess import PostprocessOptions

RunBatch = Callable[..., list[Detections]]
"""``run_batch(images, options)``; with ``concurrency`` > 1 also ``spread=`` (see ``DynamicBatcher``)."""


@dataclass
class _Pending:
    image: np.ndarray
    options: PostprocessOptions
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    """Batch single-image calls from many coroutines into ``run_batch`` calls.

    Args:
        run_batch: runs a list of BGR images with per-image options (``Detector.predict_arrays``).
        config: batch size and delay limits.
        on_batch: called with ``(batch_size, queue_wait_seconds_per_image)`` after each batch (metrics).
        concurrency: batches that may run at once. Above 1, ``run_batch`` is called from several
            threads and with ``spread=True`` when nothing else waited as its batch was closed (it
            may then use every idle core) or ``spread=False`` (other batches are coming: keep to
            one share of the cores).

    Example:
        >>> async def demo(batcher):  # doctest: +SKIP
        ...     return await batcher.submit(image, PostprocessOptions())
    """

    def __init__(
        self,
        run_batch: RunBatch,
        config: BatchingConfig,
        on_batch: Callable[[int, list[float]], None] | None = None,
        concurrency: int = 1,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.run_batch = run_batch
        self.config = config
        self.on_batch = on_batch
        self.concurrency = concurrency
        self._queue: asyncio.Queue[_Pending] | None = None
        self._workers: list[asyncio.Task] = []
        self._gathering: asyncio.Lock | None = None
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="nexus-infer")
        self.batches_run = 0
        self._incoming = 0
        self._running = 0

    def expect(self, images: int) -> None:
        """Announce images that will be submitted soon (a request decoding them); a negative count
        withdraws an announcement (the request failed before submitting)."""
        self._incoming = max(0, self._incoming + images)

    @property
    def idle(self) -> bool:
        """No batch runs or waits and no image is announced: a new image would be a batch of its own."""
        return not self._running and self._incoming <= 0 and (self._queue is None or self._queue.empty())

    def _ensure_started(self) -> asyncio.Queue[_Pending]:
        alive = [worker for worker in self._workers if not worker.done()]
        if self._queue is None or not alive:  # first use, or a new event loop
            self._queue = asyncio.Queue()
            self._gathering = asyncio.Lock()
        if len(alive) < self.concurrency:  # replace only workers that ended; the others keep running
            loop = asyncio.get_running_loop()
            alive += [loop.create_task(self._work()) for _ in range(self.concurrency - len(alive))]
        self._workers = alive
        return self._queue

    async def submit(self, image: np.ndarray, options: PostprocessOptions) -> Detections:
        """Queue one image; returns its detections once its batch has run."""
        queue = self._ensure_started()
        future = asyncio.get_running_loop().create_future()
        await queue.put(_Pending(image, options, future))
        self._incoming = max(0, self._incoming - 1)
        return await future

    async def submit_many(
        self, images: Sequence[np.ndarray], options: PostprocessOptions
    ) -> list[Detections]:
        """Queue several images of one request; they may land in the same or in different batches."""
        return list(await asyncio.gather(*(self.submit(image, options) for image in images)))

    async def _collect(self, queue: asyncio.Queue[_Pending]) -> list[_Pending]:
        batch = [await queue.get()]
        deadline = batch[0].enqueued + self.config.max_delay_ms / 1000
        while len(batch) < self.config.max_batch_size:
            try:
                batch.append(queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            if self._incoming <= 0:
                break  # nothing else is on its way: waiting would only add latency
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _work(self) -> None:
        queue, gathering = self._queue, self._gathering
        assert queue is not None and gathering is not None
        while True:
            async with gathering:  # one worker gathers at a time; the others run their batches
                batch = await self._collect(queue)
                self._running += 1
            # nothing else waits: this batch may take every idle core
            spread = queue.empty() and self._incoming <= 0
            try:
                await self._answer(batch, spread)
            finally:
                self._running -= 1

    async def _answer(self, batch: list[_Pending], spread: bool = True) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        if self.on_batch is not None:
            self.on_batch(len(batch), [started - item.enqueued for item in batch])
        try:
            results = await loop.run_in_executor(self._executor, self._run, batch, spread)
        except Exception:  # one bad image must not fail its neighbours: retry one by one
            results = None
        self.batches_run += 1
        if results is not None:
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)
            return
        for item in batch:
            try:
                (result,) = await loop.run_in_executor(self._executor, self._run, [item])
            except Exception as error:
                if not item.future.done():
                    item.future.set_exception(error)
            else:
                if not item.future.done():
                    item.future.set_result(result)

    def _run(self, batch: list[_Pending], spread: bool = True) -> list[Detections]:
        images, options = [item.image for item in batch], [item.options for item in batch]
        if self.concurrency == 1:
            return self.run_batch(images, options)
        return self.run_batch(images, options, spread=spread)

    def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
