"""Prometheus metrics of one app instance: requests by route template and status, DB pool gauges.

With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set, see :mod:`nexus.service.workers`) the
values live in files of that folder and every scrape sums the workers (gauges over live workers).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.ext.asyncio import AsyncEngine


class ServiceMetrics:
    """A private registry per app, so several apps (tests) never collide.

    Example:
        >>> m = ServiceMetrics()
        >>> m.observe("GET", "/health", 200, 0.01)
        >>> b'nexus_api_requests_total' in m.render(None)
        True
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "nexus_api_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "nexus_api_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.in_flight = Gauge(
            "nexus_api_requests_in_flight",
            "Requests being served",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.pool = Gauge(
            "nexus_api_db_pool",
            "DB connection pool (summed over worker processes)",
            ["state"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.uploads = Counter(
            "nexus_api_upload_bytes_total", "Bytes stored by uploads", ["kind"], registry=self.registry
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self, engine: AsyncEngine | None) -> bytes:
        """The text exposition, with pool gauges read at scrape time."""
        if engine is not None:
            pool = engine.sync_engine.pool
            for state in ("size", "checkedout", "checkedin", "overflow"):
                reader = getattr(pool, state, None)
                if callable(reader):
                    self.pool.labels(state).set(reader())
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)
        return generate_latest(merged)
