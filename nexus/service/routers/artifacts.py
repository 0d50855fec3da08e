"""``/artifacts``: streamed uploads of images and artifact files (optionally linked to a run)."""

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from nexus.service.audit import record, snapshot
from nexus.service.crud import get_or_404, paginate
from nexus.service.dependencies import Session, Settings, Store, requires
from nexus.service.media_types import ALLOWED
from nexus.service.schemas.common import ERROR_RESPONSES, ErrorBody, IdPath, IdRef, Limit, Offset, Page
from nexus.service.schemas.media import ArtifactOut
from nexus.service.tables import Artifact, PipelineRun
from nexus.service.uploads import stored_upload

router = APIRouter(prefix="/artifacts", tags=["artifacts"], responses=ERROR_RESPONSES)
Kind = Literal["image", "artifact"]
ArtifactSort = Literal["id", "-id", "name", "-name", "created_at", "-created_at", "size_bytes", "-size_bytes"]
FileName = Annotated[str, Query(min_length=1, max_length=256, pattern=r"^[^\x00/\\]+$")]
BINARY = {"schema": {"type": "string", "format": "binary"}}
CONTENT_TYPES = sorted(ALLOWED["image"] | ALLOWED["artifact"])


@router.post(
    "",
    response_model=ArtifactOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The raw file; its type is read from its first bytes.",
            "content": {"application/octet-stream": BINARY},
        }
    },
    responses={
        413: {"model": ErrorBody, "description": "Upload too large"},
        415: {"model": ErrorBody, "description": "Not an accepted type for this kind"},
    },
)
async def upload_artifact(
    request: Request,
    name: FileName,
    session: Session,
    settings: Settings,
    store: Store,
    caller: requires("artifacts:write"),
    kind: Annotated[Kind, Query()] = "artifact",
    run_id: Annotated[IdRef | None, Query()] = None,
) -> Artifact:
    """Upload an image (JPEG, PNG, WebP, GIF, BMP) or artifact (zip, gzip, tar, PDF, JPEG, PNG)."""
    if run_id is not None:
        await get_or_404(session, PipelineRun, run_id, "run")
    async with stored_upload(request, store, settings, kind, f"{kind}s") as (spooled, key):
        artifact = Artifact(
            kind=kind,
            name=name,
            object_key=key,
            content_type=spooled.content_type,
            size_bytes=spooled.size,
            sha256=spooled.sha256,
            run_id=run_id,
            created_by=caller.user_id,
        )
        session.add(artifact)
        await session.flush()
        record(session, caller, "create", "artifact", artifact.id, None, snapshot(artifact))
        await session.commit()
    return artifact


@router.get("", response_model=Page[ArtifactOut])
async def list_artifacts(
    session: Session,
    caller: requires("artifacts:read"),
    kind: Annotated[Kind | None, Query()] = None,
    run_id: Annotated[IdRef | None, Query()] = None,
    sha256: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    sort: Annotated[ArtifactSort, Query()] = "-id",
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """List artifacts, filtered by kind, run and content hash."""
    stmt = select(Artifact)
    if kind:
        stmt = stmt.where(Artifact.kind == kind)
    if run_id is not None:
        stmt = stmt.where(Artifact.run_id == run_id)
    if sha256:
        stmt = stmt.where(Artifact.sha256 == sha256)
    return await paginate(session, stmt, Artifact, sort=sort, limit=limit, offset=offset)


@router.get("/{artifact_id}", response_model=ArtifactOut)
async def get_artifact(artifact_id: IdPath, session: Session, caller: requires("artifacts:read")) -> Artifact:
    """One artifact's metadata."""
    return await get_or_404(session, Artifact, artifact_id, "artifact")


@router.get(
    "/{artifact_id}/content",
    response_class=StreamingResponse,
    responses={200: {"description": "The file bytes.", "content": {t: BINARY for t in CONTENT_TYPES}}},
)
async def download_artifact(
    artifact_id: IdPath, session: Session, store: Store, caller: requires("artifacts:read")
):
    """The file bytes, streamed from storage."""
    artifact = await get_or_404(session, Artifact, artifact_id, "artifact")
    if not await store.exists(artifact.object_key):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"content of artifact {artifact_id} is missing from storage"
        )
    return StreamingResponse(
        store.stream(artifact.object_key),
        media_type=artifact.content_type,
        headers={"Content-Length": str(artifact.size_bytes)},
    )
