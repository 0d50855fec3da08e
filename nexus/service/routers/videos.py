"""``/videos``: streamed uploads to object storage, metadata, processing jobs and status, download."""

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from nexus.errors import NexusError
from nexus.service.audit import record, snapshot
from nexus.service.crud import get_or_404, paginate, update_row
from nexus.service.dependencies import Session, Settings, Store, requires
from nexus.service.jobs import new_job, queue_video
from nexus.service.media_types import ALLOWED
from nexus.service.processing import check_model
from nexus.service.schemas.common import ERROR_RESPONSES, ErrorBody, FilterText, IdPath, Limit, Offset, Page
from nexus.service.schemas.media import VideoOut, VideoStatus, VideoUpdate
from nexus.service.schemas.processing import ProcessRequest
from nexus.service.settings import ServiceSettings
from nexus.service.tables import Video
from nexus.service.uploads import stored_upload

router = APIRouter(prefix="/videos", tags=["videos"], responses=ERROR_RESPONSES)
VideoSort = Literal["id", "-id", "name", "-name", "created_at", "-created_at", "size_bytes", "-size_bytes"]
VideoName = Annotated[str, Query(min_length=1, max_length=256, pattern=r"^[^\x00/\\]+$")]

UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "description": "The raw video bytes (MP4, MOV, MKV/WebM, AVI, MPEG-TS); the type is read from them.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
UPLOAD_ERRORS = {
    413: {"model": ErrorBody, "description": "Upload too large"},
    415: {"model": ErrorBody, "description": "Not an accepted video type"},
    422: {"model": ErrorBody, "description": "Bad parameters, or process=true without a default model"},
}
ProcessFlag = Annotated[
    bool | None,
    Query(
        description="Queue a processing job with default options right after the upload. Default: "
        "yes when the service has a default model (NEXUS_API_DETECTOR_MODEL) and "
        "NEXUS_API_PROCESS_ON_UPLOAD is on."
    ),
]


def _model(settings: ServiceSettings, requested: str | None) -> str:
    """The model a job will use, or 422 naming why there is none."""
    try:
        return check_model(settings, requested)
    except NexusError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error


@router.post(
    "",
    response_model=VideoOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=UPLOAD_DOC,
    responses=UPLOAD_ERRORS,
)
async def upload_video(
    request: Request,
    name: VideoName,
    session: Session,
    settings: Settings,
    store: Store,
    caller: requires("videos:write"),
    process: ProcessFlag = None,
) -> Video:
    """Upload a video as the request body; it is streamed to storage, then recorded.

    The body is checked chunk by chunk: past ``NEXUS_API_MAX_UPLOAD_BYTES`` the answer is 413, content
    that is not a video is 415; either way no object and no row are left behind. With processing on
    (see ``process``) the video comes back ``queued``; watch ``GET /videos/{id}``.
    """
    if process is None:
        process = settings.process_on_upload and bool(settings.detector_model)
    model = _model(settings, None) if process else None
    async with stored_upload(request, store, settings, "video", "videos") as (spooled, key):
        video = Video(
            name=name,
            object_key=key,
            content_type=spooled.content_type,
            size_bytes=spooled.size,
            sha256=spooled.sha256,
            status="queued" if model else "uploaded",
            message="queued" if model else "",
            extra={"processing": new_job(ProcessRequest(), model)} if model else {},
            created_by=caller.user_id,
        )
        session.add(video)
        await session.flush()
        record(session, caller, "create", "video", video.id, None, snapshot(video))
        await session.commit()
    if model:
        request.app.state.worker.notify()
    return video


@router.post(
    "/{video_id}/process",
    response_model=VideoOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={422: {"model": ErrorBody, "description": "Bad options, or no such model"}},
)
async def process_video(
    video_id: IdPath,
    request: Request,
    session: Session,
    settings: Settings,
    caller: requires("videos:write"),
    body: ProcessRequest | None = None,
) -> Video:
    """Queue a processing job: decode, sample, detect, track, store detections (with track ids).

    Answers at once with the video ``queued``; ``GET /videos/{id}`` shows ``processing`` with progress
    in ``extra.processing.progress``, then ``processed`` (or ``failed`` with the reason in ``message``).
    Results: ``GET /detections?video_id=..`` and ``GET /videos/{id}/tracks``. Processing again replaces
    the video's detections when the new job succeeds; a job already queued or running gives 409.
    """
    video = await get_or_404(session, Video, video_id, "video")
    options = body or ProcessRequest()
    model = _model(settings, options.model)
    if not await queue_video(session, video, options, model):
        await session.refresh(video)
        raise HTTPException(status.HTTP_409_CONFLICT, f"video {video_id} is already {video.status}")
    record(
        session,
        caller,
        "process",
        "video",
        video_id,
        None,
        {**options.model_dump(mode="json"), "model": model},
    )
    await session.commit()
    await session.refresh(video)
    request.app.state.worker.notify()
    return video


@router.get("", response_model=Page[VideoOut])
async def list_videos(
    session: Session,
    caller: requires("videos:read"),
    status_: Annotated[VideoStatus | None, Query(alias="status")] = None,
    name: FilterText = None,
    content_type: Annotated[Literal[tuple(sorted(ALLOWED["video"]))] | None, Query()] = None,  # type: ignore[valid-type]
    sort: Annotated[VideoSort, Query()] = "-id",
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """List videos, filtered by status, name substring and content type."""
    stmt = select(Video)
    if status_:
        stmt = stmt.where(Video.status == status_)
    if name:
        stmt = stmt.where(Video.name.contains(name, autoescape=True))
    if content_type:
        stmt = stmt.where(Video.content_type == content_type)
    return await paginate(session, stmt, Video, sort=sort, limit=limit, offset=offset)


@router.get("/{video_id}", response_model=VideoOut)
async def get_video(video_id: IdPath, session: Session, caller: requires("videos:read")) -> Video:
    """One video's metadata."""
    return await get_or_404(session, Video, video_id, "video")


@router.get(
    "/{video_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The video bytes, in the content type detected at upload.",
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in sorted(ALLOWED["video"])
            },
        }
    },
)
async def download_video(video_id: IdPath, session: Session, store: Store, caller: requires("videos:read")):
    """The video bytes, streamed from storage."""
    video = await get_or_404(session, Video, video_id, "video")
    if not await store.exists(video.object_key):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"content of video {video_id} is missing from storage")
    return StreamingResponse(
        store.stream(video.object_key),
        media_type=video.content_type,
        headers={"Content-Length": str(video.size_bytes)},
    )


@router.patch("/{video_id}", response_model=VideoOut)
async def update_video(
    video_id: IdPath, body: VideoUpdate, session: Session, caller: requires("videos:write")
) -> Video:
    """Update metadata or processing status."""
    video = await get_or_404(session, Video, video_id, "video")
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    return await update_row(session, caller, "video", video, changes)
