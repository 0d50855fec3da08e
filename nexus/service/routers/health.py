"""``/health`` and ``/ready`` (no auth, for probes) and ``/metrics`` (Prometheus; ``metrics:read``)."""

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import text

from nexus.service.dependencies import requires
from nexus.service.schemas.common import ERROR_RESPONSES

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    """Liveness answer."""

    status: str


class Readiness(BaseModel):
    """Readiness answer: each dependency and whether it answered."""

    status: str
    checks: dict[str, bool]


@router.get("/health", response_model=Health)
async def health() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(request: Request) -> JSONResponse:
    """The database and object storage answer (503 when either does not)."""
    state = request.app.state

    async def database() -> bool:
        try:
            async with state.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    db_ok, store_ok = await asyncio.gather(database(), state.store.ping())
    checks = {"database": db_ok, "storage": bool(store_ok)}
    ok = all(checks.values())
    body = Readiness(status="ready" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **ERROR_RESPONSES},
)
async def metrics(request: Request, caller: requires("metrics:read")) -> Response:
    """Prometheus text exposition."""
    state = request.app.state
    return Response(state.metrics.render(state.engine), media_type="text/plain; version=0.0.4; charset=utf-8")
