"""Cap the bytes of a request body before any of it reaches the model server.

KServe and uvicorn read a body of any size into memory: one client sending gigabytes could take the
predictor down for every other client. :class:`RequestBodyLimitMiddleware` refuses such a body with a
413 JSON error, by its declared ``Content-Length`` before reading anything, or while a body without one
(chunked) streams in, and hands the app the body it has read so far in one message (the app reads it
whole anyway). A client that stops sending in the middle of its body gets a 408 once
``body_idle_timeout_s`` pass without a byte (as nginx's ``client_body_timeout``), instead of holding
its connection and buffer for ever.

Example:
    >>> app.add_middleware(RequestBodyLimitMiddleware, max_bytes=128 * 2**20)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_REQUEST_BYTES = 128 * 2**20
"""128 MiB: a full batch of 64 JPEGs at 720p is ~15 MB as binary tensors, ~20 MB as base64."""

DEFAULT_BODY_IDLE_TIMEOUT_S = 60.0
"""How long a request body may pause between two of its chunks."""


def too_large_message(max_bytes: int, size: int | None = None) -> str:
    """The error a client reads when its body is over ``max_bytes``.

    Example:
        >>> too_large_message(1000, 1500)[:50]
        'request body of 1500 bytes exceeds the limit of 10'
    """
    what = "request body" if size is None else f"request body of {size} bytes"
    return (
        f"{what} exceeds the limit of {max_bytes} bytes (--max-request-bytes); send fewer or smaller "
        "images per request"
    )


class RequestBodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with ``413 {"error": ...}``; pass the rest through.

    Args:
        app: the ASGI application behind this middleware.
        max_bytes: the largest body accepted, in bytes.
        body_idle_timeout_s: the longest pause between two chunks of a body before a 408.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        body_idle_timeout_s: float = DEFAULT_BODY_IDLE_TIMEOUT_S,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        if not body_idle_timeout_s > 0:
            raise ValueError(f"body_idle_timeout_s must be above 0, got {body_idle_timeout_s}")
        self.app = app
        self.max_bytes = max_bytes
        self.body_idle_timeout_s = body_idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _refuse(send, too_large_message(self.max_bytes, declared))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.body_idle_timeout_s)
            except TimeoutError:
                stalled = (
                    f"request body stalled: no bytes for {self.body_idle_timeout_s:g} s after {size} bytes"
                )
                await _refuse(send, stalled, status=408)
                return
            if message["type"] != "http.request":
                return  # the client went away before its body arrived
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _refuse(send, too_large_message(self.max_bytes))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: disconnect notices
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _refuse(send: Send, message: str, status: int = 413) -> None:
    body = orjson.dumps({"error": message})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the rest of the body is not read
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
