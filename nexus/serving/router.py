"""Canary router: split traffic between a champion and a challenger predictor, watch, roll back.

Inference requests (``POST``) go to the challenger for ``percent`` % of users (sticky per
``X-User-Id`` header, random without one); every other request goes to the champion. The OIP's
versioned routes (``/v2/models/{name}/versions/{v}/...``) go to version ``v`` whatever the split.
Each answer carries the version that produced it (``X-Model-Version`` header, ``model_version``
JSON field).
Per version the router counts requests, errors (5xx or no answer) and latencies over a sliding
window, and rolls the challenger back on its own when it does clearly worse than the champion.

Admin endpoints: ``GET /admin/status``, ``POST /admin/promote``, ``POST /admin/rollback``,
``PUT /admin/traffic`` (``{"percent": N}``).

Example:
    >>> champion, challenger = Upstream("v1", "http://127.0.0.1:8081"), Upstream("v2", "http://127.0.0.1:8082")
    >>> router = CanaryRouter(champion, challenger, percent=10)
    >>> router.choose("alice") in ("v1", "v2")
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from nexus.serving.body_limit import DEFAULT_MAX_REQUEST_BYTES, RequestBodyLimitMiddleware
from nexus.serving.metrics import ROUTER_ERRORS, ROUTER_LATENCY, ROUTER_REQUESTS
from nexus.serving.rollback_rule import VersionHealth, rollback_reason

VERSION_HEADER = "X-Model-Version"
USER_HEADER = "X-User-Id"
_HOP_HEADERS = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
        "trailer", "transfer-encoding", "upgrade",
    }
)  # fmt: skip
# set anew on each leg: the host, the body's length and the encodings of that connection; the router's
# own date, server and version headers replace the predictor's
_REQUEST_SKIP = _HOP_HEADERS | {"host", "content-length", "accept-encoding"}
_RESPONSE_SKIP = _HOP_HEADERS | {"content-length", "content-encoding", "date", "server", "x-model-version"}
_URL_SAFE = "/%:@!$&'()*+,;=-._~?"  # what passes unquoted: a client's percent-escapes stay as sent
_ROUTER_ENDPOINTS = {
    "admin/status": "GET",
    "admin/promote": "POST",
    "admin/rollback": "POST",
    "admin/traffic": "PUT",
    "metrics": "GET",
}


@dataclass(frozen=True)
class Upstream:
    """One predictor behind the router: a version label and its base URL."""

    version: str
    url: str

    def __post_init__(self) -> None:
        if not self.version:
            raise ValueError("an upstream needs a version label, e.g. 'v1'")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"upstream URL must start with http:// or https://, got {self.url!r}")


@dataclass(frozen=True)
class RollbackPolicy:
    """When the router rolls a challenger back on its own.

    The challenger is rolled back once both versions have at least ``min_requests`` in the window and
    its error rate exceeds the champion's by more than ``max_error_rate_margin``, or its p95 latency
    exceeds the champion's by more than ``max_p95_margin`` (a fraction: 0.5 = 50 % slower).

    Example:
        >>> RollbackPolicy(window=100, min_requests=20).max_error_rate_margin
        0.05
    """

    enabled: bool = True
    window: int = 200
    min_requests: int = 20
    max_error_rate_margin: float = 0.05
    max_p95_margin: float = 0.5

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"rollback window must be at least 1 request, got {self.window}")
        if not 1 <= self.min_requests <= self.window:
            raise ValueError(
                f"min_requests must be within [1, window={self.window}], got {self.min_requests}"
            )
        if not 0.0 <= self.max_error_rate_margin <= 1.0:
            raise ValueError(f"max_error_rate_margin must be within [0, 1], got {self.max_error_rate_margin}")
        if self.max_p95_margin <= -1.0:
            raise ValueError(f"max_p95_margin must be above -1 (a fraction), got {self.max_p95_margin}")


@dataclass
class VersionStats:
    """Counters and a sliding window of ``(error, latency_seconds)`` for one version."""

    window: int
    requests: int = 0
    errors: int = 0
    recent: deque = field(default_factory=deque)

    def record(self, error: bool, latency: float) -> None:
        self.requests += 1
        self.errors += int(error)
        self.recent.append((error, latency))
        while len(self.recent) > self.window:
            self.recent.popleft()

    @property
    def window_error_rate(self) -> float:
        return sum(e for e, _ in self.recent) / len(self.recent) if self.recent else 0.0

    @property
    def window_p95(self) -> float:
        if not self.recent:
            return 0.0
        latencies = sorted(latency for _, latency in self.recent)
        return latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]

    def health(self) -> VersionHealth:
        """The sliding window as the rollback rule reads it."""
        return VersionHealth(len(self.recent), self.window_error_rate, self.window_p95)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "window_requests": len(self.recent),
            "window_error_rate": round(self.window_error_rate, 4),
            "window_p95_ms": round(self.window_p95 * 1000, 3),
        }


class CanaryRouter:
    """The routing state: who serves, which share, the stats, and the rollback decision."""

    def __init__(
        self,
        champion: Upstream,
        challenger: Upstream | None = None,
        percent: float = 0.0,
        policy: RollbackPolicy | None = None,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"canary percent must be within [0, 100], got {percent}")
        if challenger is not None and challenger.version == champion.version:
            raise ValueError(
                f"champion and challenger need different version labels, both are {champion.version!r}"
            )
        self.champion = champion
        self.challenger = challenger
        self.percent = percent if challenger is not None else 0.0
        self.policy = policy or RollbackPolicy()
        self.stats: dict[str, VersionStats] = {}
        self.events: list[dict[str, Any]] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.on_change: Callable[[dict[str, Any]], None] | None = None
        """Called (in a thread of its own) with each promote or rollback that changed who serves."""
        # series at 0 from the first scrape, so that rate() sees a version's first requests
        for version in self.versions():
            ROUTER_REQUESTS.labels(version=version)
            ROUTER_ERRORS.labels(version=version)
            ROUTER_LATENCY.labels(version=version)

    def upstream(self, version: str) -> Upstream:
        if self.challenger is not None and version == self.challenger.version:
            return self.challenger
        return self.champion

    def versions(self) -> list[str]:
        """The versions serving now: the champion, then the challenger if any."""
        challenger = self.challenger
        return [self.champion.version] + ([challenger.version] if challenger is not None else [])

    def choose(self, user_id: str | None) -> str:
        """The version to serve this request: sticky per user id, random without one."""
        if self.challenger is None or self.percent <= 0:
            return self.champion.version
        if user_id:
            bucket = int.from_bytes(hashlib.sha256(user_id.encode()).digest()[:8], "big") % 10_000 / 100
        else:
            bucket = self._random.random() * 100
        return self.challenger.version if bucket < self.percent else self.champion.version

    def record(self, version: str, error: bool, latency: float) -> None:
        with self._lock:
            stats = self.stats.setdefault(version, VersionStats(self.policy.window))
            stats.record(error, latency)
        ROUTER_REQUESTS.labels(version=version).inc()
        if error:
            ROUTER_ERRORS.labels(version=version).inc()
        ROUTER_LATENCY.labels(version=version).observe(latency)
        self.check_rollback()

    def rollback_reason(self) -> str | None:
        """Why the challenger should be rolled back now, or ``None``."""
        policy = self.policy
        if not policy.enabled or self.challenger is None:
            return None
        champion = self.stats.get(self.champion.version)
        challenger = self.stats.get(self.challenger.version)
        return rollback_reason(
            champion.health() if champion else None,
            challenger.health() if challenger else None,
            policy.min_requests,
            policy.max_error_rate_margin,
            policy.max_p95_margin,
        )

    def check_rollback(self) -> None:
        reason = self.rollback_reason()
        if reason is not None:
            self.rollback(reason=reason, automatic=True)

    def rollback(self, reason: str = "manual", automatic: bool = False) -> dict[str, Any]:
        """Send all traffic back to the champion and drop the challenger."""
        with self._lock:
            if self.challenger is None:
                return {"action": "rollback", "changed": False, "champion": self.champion.version}
            event = {
                "action": "rollback",
                "changed": True,
                "automatic": automatic,
                "reason": reason,
                "challenger": self.challenger.version,
                "champion": self.champion.version,
                "time": time.time(),
            }
            self.challenger, self.percent = None, 0.0
            self.events.append(event)
        self._notify(event)
        return event

    def promote(self) -> dict[str, Any]:
        """Make the challenger the champion (100 % of traffic)."""
        with self._lock:
            if self.challenger is None:
                return {"action": "promote", "changed": False, "champion": self.champion.version}
            event = {
                "action": "promote",
                "changed": True,
                "previous": self.champion.version,
                "champion": self.challenger.version,
                "time": time.time(),
            }
            self.champion, self.challenger, self.percent = self.challenger, None, 0.0
            self.events.append(event)
        self._notify(event)
        return event

    def _notify(self, event: dict[str, Any]) -> None:
        # its own thread: the hook may take a while (a registry call) and the request path must not wait
        if self.on_change is not None:
            threading.Thread(target=self.on_change, args=(dict(event),), daemon=True).start()

    def set_percent(self, percent: float) -> dict[str, Any]:
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"canary percent must be within [0, 100], got {percent}")
        if self.challenger is None:
            raise ValueError("no challenger to send traffic to; start one with --canary")
        self.percent = percent
        return self.status()

    def status(self) -> dict[str, Any]:
        return {
            "champion": {"version": self.champion.version, "url": self.champion.url},
            "challenger": None
            if self.challenger is None
            else {"version": self.challenger.version, "url": self.challenger.url},
            "canary_percent": self.percent,
            "stats": {version: stats.summary() for version, stats in self.stats.items()},
            "policy": self.policy.__dict__,
            "events": self.events,
        }


def _label_body(content: bytes, content_type: str, version: str) -> bytes:
    """Add ``model_version`` to a JSON object body (binary and non-object bodies pass unchanged)."""
    if not content_type.startswith("application/json") or not content.startswith(b"{"):
        return content
    try:
        body = json.loads(content)
    except ValueError:
        return content
    body["model_version"] = version
    return json.dumps(body).encode()


def pinned_version(path: str) -> tuple[str, str] | None:
    """``(version, path without the version)`` for an OIP versioned route, else ``None``.

    ``path`` is as sent (percent-escapes kept); the version is compared decoded.

    Example:
        >>> pinned_version("v2/models/det/versions/v2/infer")
        ('v2', 'v2/models/det/infer')
        >>> pinned_version("v2/models/det/infer") is None
        True
    """
    parts = path.split("/")
    if len(parts) >= 5 and parts[0] == "v2" and parts[1] == "models" and parts[3] == "versions" and parts[4]:
        return unquote(parts[4]), "/".join(parts[:3] + parts[5:])
    return None


def _end_to_end(headers: list[tuple[bytes, bytes]], skip: frozenset[str]) -> list[tuple[bytes, bytes]]:
    """The headers to pass on, as raw bytes and repeats kept: without ``skip`` and without the ones the
    ``Connection`` header names (hop-by-hop for this connection only)."""
    named = {
        token.strip().lower()
        for key, value in headers
        if key.lower() == b"connection"
        for token in value.decode("latin-1").split(",")
    }
    dropped = skip | named
    return [(key, value) for key, value in headers if key.decode("latin-1").lower() not in dropped]


def _percent(body: Any) -> float:
    """The ``percent`` of a traffic request: a JSON number (not a string or a boolean) within [0, 100]."""
    value = body.get("percent") if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = "no field 'percent'" if not isinstance(body, dict) or "percent" not in body else repr(value)
        raise ValueError(f"percent must be a number, got {shown}")
    if not 0 <= value <= 100:  # an int compared as it is: a huge one does not fit a float
        raise ValueError(f"canary percent must be within [0, 100], got {str(value)[:20]}")
    return float(value) + 0.0  # -0.0 reads 0.0


def create_router_app(
    router: CanaryRouter,
    timeout_s: float = 30.0,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    admin_token: str | None = None,
) -> FastAPI:
    """The router's ASGI app: admin endpoints, ``/metrics``, and a proxy for everything else.

    Bodies over ``max_request_bytes`` are refused with a 413 before the router buffers them. With
    ``admin_token`` the endpoints that change the rollout (promote, rollback, traffic) answer 401
    unless the request carries ``Authorization: Bearer <admin_token>``; status stays readable.
    """
    client_holder: dict[str, httpx.AsyncClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        if "client" in client_holder:
            await client_holder.pop("client").aclose()

    app = FastAPI(title="nexus canary router", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.add_middleware(RequestBodyLimitMiddleware, max_bytes=max_request_bytes)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        detail = {"error": str(error.detail)}
        return JSONResponse(detail, status_code=error.status_code, headers=error.headers)

    def client() -> httpx.AsyncClient:
        if "client" not in client_holder:
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
            client_holder["client"] = httpx.AsyncClient(timeout=timeout_s, limits=limits)
        return client_holder["client"]

    @app.get("/admin/status")
    async def status() -> dict[str, Any]:
        return router.status()

    def refused(request: Request) -> JSONResponse | None:
        """A 401 unless the request carries the admin token (when one is set)."""
        if not admin_token:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # the header's bytes as sent (Starlette decodes headers as latin-1) against the token's UTF-8
        given = token.strip().encode("latin-1")
        if scheme.lower() == "bearer" and hmac.compare_digest(given, admin_token.encode()):
            return None
        message = "changing the rollout needs 'Authorization: Bearer <token>' (NEXUS_ROUTER_ADMIN_TOKEN)"
        return JSONResponse(
            {"error": message},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.post("/admin/promote", response_model=None)
    async def promote(request: Request) -> dict[str, Any] | JSONResponse:
        return refused(request) or router.promote()

    @app.post("/admin/rollback", response_model=None)
    async def rollback(request: Request) -> dict[str, Any] | JSONResponse:
        return refused(request) or router.rollback(reason="manual")

    @app.put("/admin/traffic")
    async def traffic(request: Request) -> JSONResponse:
        denied = refused(request)
        if denied is not None:
            return denied
        try:
            return JSONResponse(router.set_percent(_percent(await request.json())))
        except ValueError as error:  # not JSON, not UTF-8, or not a percent
            return JSONResponse({"error": f'expected {{"percent": 0..100}}: {error}'}, status_code=400)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "HEAD"])
    async def proxy(path: str, request: Request) -> Response:
        if path in _ROUTER_ENDPOINTS or path.startswith("admin/"):  # the router's own: never proxied
            allowed = _ROUTER_ENDPOINTS.get(path)
            endpoints = ", ".join(f"{method} /{name}" for name, method in _ROUTER_ENDPOINTS.items())
            return JSONResponse(
                {"error": f"{request.method} /{path} is not a router endpoint; there are: {endpoints}"},
                status_code=404 if allowed is None else 405,
                headers=None if allowed is None else {"Allow": allowed},
            )
        # the path as the client sent it: decoded, a '%3F' or '%23' would turn into a query or a fragment
        target = quote(request.scope.get("raw_path") or path.encode(), safe=_URL_SAFE).lstrip("/")
        query = quote(request.scope.get("query_string", b""), safe=_URL_SAFE)
        pinned = pinned_version(target)
        if pinned is not None:  # /v2/models/{name}/versions/{v}/...: that version, outside the split
            version, target = pinned
            if version not in router.versions():
                serving = ", ".join(router.versions())
                return JSONResponse(
                    {"error": f"no version {version!r} behind this router; serving: {serving}"},
                    status_code=404,
                )
        elif request.method == "POST":
            version = router.choose(request.headers.get(USER_HEADER))
        else:
            version = router.champion.version
        upstream = router.upstream(version)
        started = time.perf_counter()
        try:
            answer = await client().request(
                request.method,
                f"{upstream.url}/{target}" + (f"?{query}" if query else ""),
                content=await request.body(),
                headers=_end_to_end(request.headers.raw, _REQUEST_SKIP),
            )
        except httpx.HTTPError as error:
            if request.method == "POST":
                router.record(version, True, time.perf_counter() - started)
            timed_out = isinstance(error, httpx.TimeoutException)
            reason = f" within {timeout_s:g} s" if timed_out else f": {type(error).__name__}"
            return JSONResponse(
                {"error": f"version {version} did not answer{reason}", "model_version": version},
                status_code=504 if timed_out else 502,
                headers={VERSION_HEADER: version},
            )
        if request.method == "POST":
            router.record(version, answer.status_code >= 500, time.perf_counter() - started)
        response = Response(
            _label_body(answer.content, answer.headers.get("content-type", ""), version),
            status_code=answer.status_code,
            headers={VERSION_HEADER: version},
        )
        base = str(request.base_url).rstrip("/")
        for key, value in _end_to_end(answer.headers.raw, _RESPONSE_SKIP):
            if key.lower() == b"location":  # a redirect names the router, not the predictor behind it
                value = value.replace(upstream.url.encode(), base.encode(), 1)
            response.raw_headers.append((key, value))
        return response

    return app
