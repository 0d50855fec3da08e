"""``/runs``: pipeline runs, launched and followed by the service (``launch``) or reported with PATCH.

The router's lifespan runs the launcher's watcher (:mod:`nexus.service.run_launcher`).
"""

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import select

from nexus.service.crud import create_row, get_or_404, paginate, update_row
from nexus.service.db import utcnow
from nexus.service.dependencies import Session, Settings, requires
from nexus.service.run_launcher import (
    LOG_NAME,
    RESERVED_LINKS,
    ParameterError,
    RunLauncher,
    is_local,
    is_managed,
    launcher_lifespan,
    read_tail,
    run_root,
    validate_launch,
)
from nexus.service.schemas.common import ERROR_RESPONSES, ErrorBody, FilterText, IdPath, Limit, Offset, Page
from nexus.service.schemas.operations import RUN_TRANSITIONS, RunCreate, RunOut, RunStatus, RunUpdate
from nexus.service.tables import PipelineRun

router = APIRouter(prefix="/runs", tags=["runs"], responses=ERROR_RESPONSES, lifespan=launcher_lifespan)
RunSort = Literal["id", "-id", "created_at", "-created_at", "updated_at", "-updated_at", "status", "-status"]


def _launcher(request: Request) -> RunLauncher:
    return request.app.state.run_launcher


@router.post("", response_model=RunOut, status_code=status.HTTP_201_CREATED)
async def create_run(
    body: RunCreate, request: Request, session: Session, settings: Settings, caller: requires("runs:write")
) -> PipelineRun:
    """Record a pipeline run in ``queued`` status; with ``launch`` the service also runs it.

    A launched run starts when fewer than ``NEXUS_API_MAX_RUNNING_PIPELINES`` runs are running (it
    waits ``queued`` otherwise), or is submitted to Kubeflow at once when ``NEXUS_API_KFP_HOST`` is set
    (``failed``, with the reason, if the host refuses it). Follow it with GET ``/runs/{id}`` and
    ``/runs/{id}/log``.
    """
    parameters = body.parameters
    if body.launch:
        try:
            parameters = await asyncio.to_thread(validate_launch, body.pipeline, body.parameters)
        except ParameterError as error:
            raise RequestValidationError(
                [{"type": "value_error", "loc": error.loc, "msg": str(error), "input": error.value}]
            ) from error
    run = PipelineRun(
        pipeline=body.pipeline, parameters=parameters, status="queued", created_by=caller.user_id
    )
    if body.launch and not settings.kfp_host:
        session.add(run)
        await session.flush()  # the id names the run's root
        root = run_root(settings, run.id)
        run.artifacts = {"root": str(root), "log": str(root / LOG_NAME)}
    run = await create_row(session, caller, "run", run)
    if body.launch and settings.kfp_host:
        await _launcher(request).submit_kubeflow(session, run, caller)
    elif body.launch:
        _launcher(request).wake.set()
    return run


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
    """Move a run along ``queued → running → succeeded|failed|cancelled``; merge metrics and artifacts.

    The status and handle of a run the service launched are the launcher's (409): cancel it instead.
    """
    run = await get_or_404(session, PipelineRun, run_id, "run")
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if RESERVED_LINKS & set(changes.get("artifacts", {})):
        raise HTTPException(status.HTTP_409_CONFLICT, f"links {sorted(RESERVED_LINKS)} are the launcher's")
    if is_managed(run) and {"status", "external_id"} & set(changes):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"run {run_id} is run by the service: cancel it with POST /runs/{run_id}/cancel",
        )
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


@router.post("/{run_id}/cancel", response_model=RunOut)
async def cancel_run(
    run_id: IdPath, request: Request, session: Session, caller: requires("runs:write")
) -> PipelineRun:
    """Cancel a queued or running run: a local run's process group is stopped (SIGTERM, then SIGKILL
    after ``NEXUS_API_RUN_CANCEL_GRACE_SECONDS``), a Kubeflow run is terminated; 409 if it had ended."""
    run = await get_or_404(session, PipelineRun, run_id, "run")
    if not await _launcher(request).cancel(session, run, caller):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} already {run.status}")
    return run


@router.get(
    "/{run_id}/log",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "The log's last lines",
        },
        404: {"model": ErrorBody, "description": "No such run, or not run by this service"},
    },
)
async def run_log(
    run_id: IdPath,
    session: Session,
    settings: Settings,
    caller: requires("runs:read"),
    lines: Annotated[int, Query(ge=1, le=5000, description="How many of the last lines.")] = 200,
) -> PlainTextResponse:
    """The last lines of a launched local run's log (empty while it waits in the queue)."""
    run = await get_or_404(session, PipelineRun, run_id, "run")
    if not is_local(run):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no log here (not launched locally)")
    text = await asyncio.to_thread(read_tail, run_root(settings, run.id) / LOG_NAME, lines)
    return PlainTextResponse(text)
