"""Every error becomes JSON ``{"detail": ..., "request_id": ...}``; nothing leaks a traceback."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from nexus.errors import NexusError
from nexus.service.ratelimit import RateLimited

logger = logging.getLogger("nexus.service.errors")


def _request_id(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


def json_safe(value: Any) -> Any:
    """``value`` (already JSON-encoded by ``jsonable_encoder``) made writable as strict UTF-8 JSON.

    An error may echo what the client sent: JSON allows ``NaN``/``Infinity`` and lone surrogate escapes
    (``"\\ud800"``) that strict JSON and UTF-8 cannot carry back; they are answered as text instead.

    Example:
        >>> json_safe({"input": [float("nan"), "a\\ud800"]})
        {'input': ['NaN', 'a\\\\ud800']}
    """
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def error_response(
    request: Request, status: int, detail: Any, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON error answer carrying the request id."""
    request_id = _request_id(request)
    all_headers = dict(headers or {})
    if request_id:
        all_headers["X-Request-ID"] = request_id
    return JSONResponse(
        {"detail": json_safe(jsonable_encoder(detail)), "request_id": request_id}, status, headers=all_headers
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(request, exc.status_code, exc.detail, getattr(exc, "headers", None))


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in e.items() if k in {"type", "loc", "msg", "input"}} for e in exc.errors()]
    for error in errors:
        if isinstance(error.get("input"), bytes):
            error["input"] = None
    return error_response(request, 422, errors)


async def _integrity(request: Request, exc: Exception) -> JSONResponse:
    logger.info("integrity error: %s", exc)
    return error_response(request, 409, "conflicts with an existing record or a missing reference")


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)
    return error_response(request, 429, "rate limit exceeded", {"Retry-After": str(exc.retry_after)})


async def _nexus(request: Request, exc: Exception) -> JSONResponse:
    return error_response(request, 400, str(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(request, 500, "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app``."""
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(NexusError, _nexus)
    app.add_exception_handler(Exception, _unexpected)
