"""One pure-ASGI middleware: request ids, access logs, metrics, the per-IP rate limit and the body limit."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nexus.service.logs import request_id_var
from nexus.service.metrics import ServiceMetrics
from nexus.service.ratelimit import RateLimited, RateLimiter

logger = logging.getLogger("nexus.service.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
UNLIMITED_PATHS = frozenset({"/health", "/ready", "/metrics"})
STREAMED_UPLOADS = frozenset({("POST", "/videos"), ("POST", "/artifacts")})
"""Routes whose body is a file streamed to disk under ``max_upload_bytes`` (nexus.service.uploads)."""


class RequestContextMiddleware:
    """Give every request an id (``X-Request-ID`` in, or a new one), time it, count it, limit its IP,
    and refuse a body over ``max_body_bytes`` (uploads excepted) with a 413 before it is read whole."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ServiceMetrics,
        limiter: RateLimiter | None,
        max_body_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes

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
            limit = self.max_body_bytes
            if limit is not None and (scope["method"], scope["path"].rstrip("/")) not in STREAMED_UPLOADS:
                declared = _header(scope, b"content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    await _json_error(send_with_id, 413, _too_large(limit), request_id)
                    return
                receive = _counted(receive, limit)
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


def _too_large(limit: int) -> str:
    return (
        f"request body exceeds the limit of {limit} bytes (NEXUS_API_MAX_REQUEST_BYTES); "
        "send files as uploads (POST /videos, POST /artifacts)"
    )


def _counted(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises a 413 once the body passes ``limit`` bytes (for bodies sent without a
    Content-Length, or with a false one)."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, _too_large(limit))
        return message

    return counted


async def _too_many(send: Send, request_id: str, retry_after: int) -> None:
    await _json_error(
        send, 429, "rate limit exceeded", request_id, [(b"retry-after", str(retry_after).encode())]
    )


async def _json_error(
    send: Send, status: int, detail: str, request_id: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail, "request_id": request_id}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
