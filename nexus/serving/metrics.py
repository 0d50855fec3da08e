"""Prometheus metrics of the predictor (per stage, batch sizes) and of the canary router (per version).

Metrics live in the default registry, which KServe's ``/metrics`` endpoint exports.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from kserve.errors import InvalidInput
from prometheus_client import Counter, Histogram

T = TypeVar("T")

STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

STAGE_SECONDS = Histogram(
    "nexus_predictor_stage_seconds",
    "Seconds spent per stage: decode, queue_wait, preprocess, inference, postprocess.",
    ["model", "version", "stage"],
    buckets=STAGE_BUCKETS,
)
BATCH_SIZE = Histogram(
    "nexus_predictor_batch_size", "Images per forward pass.", ["model", "version"], buckets=BATCH_BUCKETS
)
PREDICTOR_REQUESTS = Counter(
    "nexus_predictor_requests_total", "Inference requests answered.", ["model", "version", "outcome"]
)
ROUTER_REQUESTS = Counter("nexus_router_requests_total", "Requests the canary router forwarded.", ["version"])
ROUTER_ERRORS = Counter(
    "nexus_router_errors_total", "Forwarded requests answered with a 5xx or not at all.", ["version"]
)
ROUTER_LATENCY = Histogram(
    "nexus_router_latency_seconds", "End-to-end latency per version.", ["version"], buckets=STAGE_BUCKETS
)


class PredictorMetrics:
    """The predictor's metrics bound to one ``(model, version)``: ``labels()`` costs a lock and a
    dictionary build per call, a dozen times per request on the hot path, so the children are made once.

    Example:
        >>> metrics = PredictorMetrics("nexus-detector", "v1")
        >>> metrics.stage["decode"].observe(0.002)
    """

    STAGES = ("decode", "queue_wait", "preprocess", "inference", "postprocess")
    OUTCOMES = ("ok", "invalid", "error")

    def __init__(self, model: str, version: str) -> None:
        labels = {"model": model, "version": version}
        self.stage = {stage: STAGE_SECONDS.labels(**labels, stage=stage) for stage in self.STAGES}
        self.batch_size = BATCH_SIZE.labels(**labels)
        self.requests = {
            outcome: PREDICTOR_REQUESTS.labels(**labels, outcome=outcome) for outcome in self.OUTCOMES
        }

    def observe_batch(self, size: int, waits: list[float]) -> None:
        """A forward pass of ``size`` images that waited ``waits`` seconds each (a batcher's ``on_batch``)."""
        self.batch_size.observe(size)
        histogram = self.stage["queue_wait"]
        for wait in waits:
            histogram.observe(wait)

    async def count_outcome(self, call: Awaitable[T]) -> T:
        """Await one request's handling and count it as ``ok``, ``invalid`` (a 4xx) or ``error``."""
        try:
            result = await call
        except InvalidInput:
            self.requests["invalid"].inc()
            raise
        except Exception:
            self.requests["error"].inc()
            raise
        self.requests["ok"].inc()
        return result
