"""One pure-ASGI middleware: request ids, access logs, metrics and the per-IP rate limit."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nexus.service.logs import request_id_var
from nexus.service.metrics import ServiceMetrics
from nexus.service.ratelimit import RateLimited, RateLimiter

logger = logging.getLogger("nexus.service.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
UNLIMITED_PATHS = frozenset({"/health", "/ready", "/metrics"})


class RequestContextMiddleware:
    """Give every request an id (``X-Request-ID`` in, or a new one), time it, count it, limit its IP."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics, limiter: RateLimiter | None) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _VALID_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_code = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        self.metrics.in_flight.inc()
        try:
            if self.limiter is not None and scope["path"] not in UNLIMITED_PATHS:
                client = scope.get("client")
                try:
                    await self.limiter.hit_ip(client[0] if client else "unknown")
                except RateLimited as limited:
                    await _too_many(send_with_id, request_id, limited.retry_after)
                    return
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.in_flight.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status_code, elapsed)
            logger.info(
                "%s %s %s",
                scope["method"],
                template,
                status_code,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                    "request_id": request_id,
                },
            )
            request_id_var.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _too_many(send: Send, request_id: str, retry_after: int) -> None:
    body = json.dumps({"detail": "rate limit exceeded", "request_id": request_id}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
