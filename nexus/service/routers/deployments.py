"""``/deployments`` and their history of canaries, promotions and rollbacks (``/deployments/{id}/events``)."""

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select

from nexus.service.audit import record, snapshot
from nexus.service.crud import get_or_404, paginate, update_row
from nexus.service.dependencies import Principal, Session, requires
from nexus.service.schemas.common import ERROR_RESPONSES, IdPath, IdRef, Limit, Offset, Page
from nexus.service.schemas.operations import (
    DeploymentCreate,
    DeploymentEventCreate,
    DeploymentEventOut,
    DeploymentOut,
    DeploymentStatus,
    DeploymentUpdate,
)
from nexus.service.tables import Deployment, DeploymentEvent, ModelVersion

router = APIRouter(prefix="/deployments", tags=["deployments"], responses=ERROR_RESPONSES)
DeploymentSort = Literal[
    "id", "-id", "name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"
]


def _event(
    deployment: Deployment, caller: Principal, kind: str, frm: int | None, to: int | None, reason: str
):
    return DeploymentEvent(
        deployment_id=deployment.id,
        kind=kind,
        from_model_version_id=frm,
        to_model_version_id=to,
        canary_percent=deployment.canary_percent,
        reason=reason,
        actor_id=caller.user_id,
    )


@router.post("", response_model=DeploymentOut, status_code=status.HTTP_201_CREATED)
async def create_deployment(
    body: DeploymentCreate, session: Session, caller: requires("deployments:write")
) -> Deployment:
    """Deploy a model version under a name (status ``pending`` until the serving side reports ready)."""
    await get_or_404(session, ModelVersion, body.model_version_id, "model version")
    deployment = Deployment(**body.model_dump(), status="pending", canary_percent=0)
    session.add(deployment)
    await session.flush()
    session.add(_event(deployment, caller, "create", None, deployment.model_version_id, ""))
    record(session, caller, "create", "deployment", deployment.id, None, snapshot(deployment))
    await session.commit()
    return deployment


@router.get("", response_model=Page[DeploymentOut])
async def list_deployments(
    session: Session,
    caller: requires("deployments:read"),
    status_: Annotated[DeploymentStatus | None, Query(alias="status")] = None,
    model_version_id: Annotated[IdRef | None, Query()] = None,
    sort: Annotated[DeploymentSort, Query()] = "id",
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """List deployments, filtered by status and served model version (stable or canary)."""
    stmt = select(Deployment)
    if status_:
        stmt = stmt.where(Deployment.status == status_)
    if model_version_id:
        stmt = stmt.where(
            (Deployment.model_version_id == model_version_id)
            | (Deployment.canary_model_version_id == model_version_id)
        )
    return await paginate(session, stmt, Deployment, sort=sort, limit=limit, offset=offset)


@router.get("/{deployment_id}", response_model=DeploymentOut)
async def get_deployment(
    deployment_id: IdPath, session: Session, caller: requires("deployments:read")
) -> Deployment:
    """One deployment."""
    return await get_or_404(session, Deployment, deployment_id, "deployment")


@router.patch("/{deployment_id}", response_model=DeploymentOut)
async def update_deployment(
    deployment_id: IdPath, body: DeploymentUpdate, session: Session, caller: requires("deployments:write")
) -> Deployment:
    """Change the endpoint or status."""
    deployment = await get_or_404(session, Deployment, deployment_id, "deployment")
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    return await update_row(session, caller, "deployment", deployment, changes)


@router.get("/{deployment_id}/events", response_model=Page[DeploymentEventOut])
async def list_deployment_events(
    deployment_id: IdPath,
    session: Session,
    caller: requires("deployments:read"),
    kind: Annotated[Literal["create", "canary", "promote", "rollback"] | None, Query()] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """The deployment's history, newest first."""
    await get_or_404(session, Deployment, deployment_id, "deployment")
    stmt = select(DeploymentEvent).where(DeploymentEvent.deployment_id == deployment_id)
    if kind:
        stmt = stmt.where(DeploymentEvent.kind == kind)
    return await paginate(session, stmt, DeploymentEvent, sort="-id", limit=limit, offset=offset)


@router.post("/{deployment_id}/events", response_model=DeploymentOut, status_code=status.HTTP_201_CREATED)
async def change_traffic(
    deployment_id: IdPath,
    body: DeploymentEventCreate,
    session: Session,
    caller: requires("deployments:write"),
) -> Deployment:
    """Start/resize a canary, promote it, or roll back; the change is appended to the history."""
    deployment = await get_or_404(session, Deployment, deployment_id, "deployment")
    before = snapshot(deployment)
    if body.kind == "canary":
        assert body.model_version_id is not None and body.percent is not None
        await get_or_404(session, ModelVersion, body.model_version_id, "model version")
        if body.model_version_id == deployment.model_version_id:
            raise HTTPException(status.HTTP_409_CONFLICT, "the canary must differ from the stable version")
        frm, to = deployment.canary_model_version_id, body.model_version_id
        deployment.canary_model_version_id, deployment.canary_percent = body.model_version_id, body.percent
    elif body.kind == "promote":
        if deployment.canary_model_version_id is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "no canary to promote")
        frm, to = deployment.model_version_id, deployment.canary_model_version_id
        deployment.model_version_id, deployment.canary_model_version_id = to, None
        deployment.canary_percent = 0
    elif deployment.canary_model_version_id is not None:
        frm, to = deployment.canary_model_version_id, deployment.model_version_id
        deployment.canary_model_version_id, deployment.canary_percent = None, 0
    else:
        last_promotion = (
            await session.execute(
                select(DeploymentEvent)
                .where(DeploymentEvent.deployment_id == deployment.id, DeploymentEvent.kind == "promote")
                .order_by(DeploymentEvent.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if last_promotion is None or last_promotion.from_model_version_id is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "nothing to roll back to")
        if await session.get(ModelVersion, last_promotion.from_model_version_id) is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "the previous model version no longer exists")
        frm, to = deployment.model_version_id, last_promotion.from_model_version_id
        deployment.model_version_id = to
    session.add(_event(deployment, caller, body.kind, frm, to, body.reason))
    await session.flush()
    await session.refresh(deployment)
    record(session, caller, body.kind, "deployment", deployment.id, before, snapshot(deployment))
    await session.commit()
    return deployment
