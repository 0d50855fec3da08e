"""``/runs``: pipeline runs (created ``queued``; the launcher moves them on with PATCH)."""

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select

from nexus.service.crud import create_row, get_or_404, paginate, update_row
from nexus.service.db import utcnow
from nexus.service.dependencies import Session, requires
from nexus.service.schemas.common import ERROR_RESPONSES, FilterText, IdPath, Limit, Offset, Page
from nexus.service.schemas.operations import RUN_TRANSITIONS, RunCreate, RunOut, RunStatus, RunUpdate
from nexus.service.tables import PipelineRun

router = APIRouter(prefix="/runs", tags=["runs"], responses=ERROR_RESPONSES)
RunSort = Literal["id", "-id", "created_at", "-created_at", "updated_at", "-updated_at", "status", "-status"]


@router.post("", response_model=RunOut, status_code=status.HTTP_201_CREATED)
async def create_run(body: RunCreate, session: Session, caller: requires("runs:write")) -> PipelineRun:
    """Record a pipeline run in ``queued`` status."""
    run = PipelineRun(
        pipeline=body.pipeline, parameters=body.parameters, status="queued", created_by=caller.user_id
    )
    return await create_row(session, caller, "run", run)


@router.get("", response_model=Page[RunOut])
async def list_runs(
    session: Session,
    caller: requires("runs:read"),
    pipeline: FilterText = None,
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
    sort: Annotated[RunSort, Query()] = "-id",
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """List runs, filtered by pipeline and status, newest first by default."""
    stmt = select(PipelineRun)
    if pipeline:
        stmt = stmt.where(PipelineRun.pipeline == pipeline)
    if status_:
        stmt = stmt.where(PipelineRun.status == status_)
    return await paginate(session, stmt, PipelineRun, sort=sort, limit=limit, offset=offset)


@router.get("/{run_id}", response_model=RunOut)
async def get_run(run_id: IdPath, session: Session, caller: requires("runs:read")) -> PipelineRun:
    """One run."""
    return await get_or_404(session, PipelineRun, run_id, "run")


@router.patch("/{run_id}", response_model=RunOut)
async def update_run(
    run_id: IdPath, body: RunUpdate, session: Session, caller: requires("runs:write")
) -> PipelineRun:
    """Move a run along ``queued → running → succeeded|failed|cancelled``; merge metrics and artifacts."""
    run = await get_or_404(session, PipelineRun, run_id, "run")
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    new_status = changes.get("status")
    if new_status is not None and new_status != run.status:
        if new_status not in RUN_TRANSITIONS[run.status]:
            raise HTTPException(status.HTTP_409_CONFLICT, f"a {run.status} run cannot become {new_status}")
        if new_status == "running":
            changes["started_at"] = utcnow()
        elif RUN_TRANSITIONS[new_status] == frozenset():
            changes["finished_at"] = utcnow()
    if "metrics" in changes:
        changes["metrics"] = {**(run.metrics or {}), **changes["metrics"]}
    if "artifacts" in changes:
        changes["artifacts"] = {**(run.artifacts or {}), **changes["artifacts"]}
    return await update_row(session, caller, "run", run, changes)
