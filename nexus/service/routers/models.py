"""``/models`` and their versions (``/models/{id}/versions``)."""

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import func, select

from nexus.service.crud import create_row, get_or_404, paginate, update_row
from nexus.service.dependencies import Session, requires
from nexus.service.schemas.catalog import (
    Alias,
    ModelCreate,
    ModelOut,
    ModelUpdate,
    ModelVersionCreate,
    ModelVersionOut,
    ModelVersionUpdate,
    Task,
)
from nexus.service.schemas.common import ERROR_RESPONSES, MAX_INT, FilterText, IdPath, Limit, Offset, Page
from nexus.service.tables import DatasetVersion, Model, ModelVersion

router = APIRouter(prefix="/models", tags=["models"], responses=ERROR_RESPONSES)
ModelSort = Literal["id", "-id", "name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"]
VersionSort = Literal["id", "-id", "version", "-version", "created_at", "-created_at"]


@router.post("", response_model=ModelOut, status_code=status.HTTP_201_CREATED)
async def create_model(body: ModelCreate, session: Session, caller: requires("models:write")) -> Model:
    """Register a model name."""
    return await create_row(session, caller, "model", Model(**body.model_dump(), created_by=caller.user_id))


@router.get("", response_model=Page[ModelOut])
async def list_models(
    session: Session,
    caller: requires("models:read"),
    name: FilterText = None,
    task: Task | None = None,
    sort: Annotated[ModelSort, Query()] = "id",
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """List models, filtered by name substring and task."""
    stmt = select(Model)
    if name:
        stmt = stmt.where(Model.name.contains(name, autoescape=True))
    if task:
        stmt = stmt.where(Model.task == task)
    return await paginate(session, stmt, Model, sort=sort, limit=limit, offset=offset)


@router.get("/{model_id}", response_model=ModelOut)
async def get_model(model_id: IdPath, session: Session, caller: requires("models:read")) -> Model:
    """One model."""
    return await get_or_404(session, Model, model_id, "model")


@router.patch("/{model_id}", response_model=ModelOut)
async def update_model(
    model_id: IdPath, body: ModelUpdate, session: Session, caller: requires("models:write")
) -> Model:
    """Change a model's description."""
    model = await get_or_404(session, Model, model_id, "model")
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    return await update_row(session, caller, "model", model, changes)


@router.post("/{model_id}/versions", response_model=ModelVersionOut, status_code=status.HTTP_201_CREATED)
async def create_model_version(
    model_id: IdPath, body: ModelVersionCreate, session: Session, caller: requires("models:write")
) -> ModelVersion:
    """Register a model version; an alias moves here from any other version of the model."""
    await get_or_404(session, Model, model_id, "model")
    if body.dataset_version_id is not None:
        await get_or_404(session, DatasetVersion, body.dataset_version_id, "dataset version")
    data = body.model_dump()
    if data["version"] is None:
        latest = (
            await session.execute(
                select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model_id)
            )
        ).scalar_one()
        if (latest or 0) >= MAX_INT:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"model {model_id} already has version {MAX_INT}, the highest number: "
                "register the new version with an explicit free version number",
            )
        data["version"] = (latest or 0) + 1
    data["aliases"] = sorted(set(data["aliases"]))
    await _release_aliases(session, caller, model_id, data["aliases"], keep=None)
    return await create_row(session, caller, "model_version", ModelVersion(model_id=model_id, **data))


@router.get("/{model_id}/versions", response_model=Page[ModelVersionOut])
async def list_model_versions(
    model_id: IdPath,
    session: Session,
    caller: requires("models:read"),
    alias: Annotated[Alias | None, Query()] = None,
    mlflow_run_id: FilterText = None,
    sort: Annotated[VersionSort, Query()] = "-version",
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """Versions of one model; ``alias`` finds e.g. the ``champion``."""
    await get_or_404(session, Model, model_id, "model")
    stmt = select(ModelVersion).where(ModelVersion.model_id == model_id)
    if mlflow_run_id:
        stmt = stmt.where(ModelVersion.mlflow_run_id == mlflow_run_id)
    page = await paginate(
        session,
        stmt,
        ModelVersion,
        sort=sort,
        limit=10_000 if alias else limit,
        offset=0 if alias else offset,
    )
    if alias:
        items = [v for v in page["items"] if alias in (v.aliases or [])]
        page = {
            "items": items[offset : offset + limit],
            "total": len(items),
            "limit": limit,
            "offset": offset,
        }
    return page


@router.get("/{model_id}/versions/{version_id}", response_model=ModelVersionOut)
async def get_model_version(
    model_id: IdPath, version_id: IdPath, session: Session, caller: requires("models:read")
) -> ModelVersion:
    """One model version."""
    return await _version(session, model_id, version_id)


@router.patch("/{model_id}/versions/{version_id}", response_model=ModelVersionOut)
async def update_model_version(
    model_id: IdPath,
    version_id: IdPath,
    body: ModelVersionUpdate,
    session: Session,
    caller: requires("models:write"),
) -> ModelVersion:
    """Update metrics or aliases (an alias names one version of a model at a time)."""
    row = await _version(session, model_id, version_id)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if "aliases" in changes:
        changes["aliases"] = sorted(set(changes["aliases"]))
        await _release_aliases(session, caller, model_id, changes["aliases"], keep=row.id)
    return await update_row(session, caller, "model_version", row, changes)


async def _version(session, model_id: int, version_id: int) -> ModelVersion:
    row = await get_or_404(session, ModelVersion, version_id, "model version")
    if row.model_id != model_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"model version {version_id} not found")
    return row


async def _release_aliases(session, caller, model_id: int, aliases: list[str], keep: int | None) -> None:
    if not aliases:
        return
    from nexus.service.audit import record, snapshot

    others = (await session.execute(select(ModelVersion).where(ModelVersion.model_id == model_id))).scalars()
    for other in others:
        if other.id != keep and set(other.aliases or []) & set(aliases):
            before = snapshot(other)
            other.aliases = [a for a in other.aliases if a not in aliases]
            record(session, caller, "update", "model_version", other.id, before, snapshot(other))
