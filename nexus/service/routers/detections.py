"""``/detections``: per-frame boxes, bulk-inserted per video and queried by video, time, class, track."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from sqlalchemy import insert, select

from nexus.service.audit import record
from nexus.service.crud import get_or_404, paginate
from nexus.service.dependencies import Session, requires
from nexus.service.schemas.common import ERROR_RESPONSES, IdPath, IdRef, Limit, Offset, Page
from nexus.service.schemas.media import BulkResult, ClassLabel, DetectionBatch, DetectionOut
from nexus.service.tables import Detection, Video

router = APIRouter(tags=["detections"], responses=ERROR_RESPONSES)
DetectionSort = Literal[
    "id", "-id", "frame", "-frame", "timestamp_s", "-timestamp_s", "confidence", "-confidence"
]
Seconds = Annotated[float | None, Query(ge=0, le=1e7, allow_inf_nan=False)]
FrameQuery = Annotated[int | None, Query(ge=0, le=2_147_483_647)]


@router.post("/videos/{video_id}/detections", response_model=BulkResult, status_code=status.HTTP_201_CREATED)
async def insert_detections(
    video_id: IdPath, body: DetectionBatch, session: Session, caller: requires("detections:write")
) -> dict:
    """Insert up to 5,000 detections of one video in one statement."""
    await get_or_404(session, Video, video_id, "video")
    rows = [{"video_id": video_id, **d.model_dump()} for d in body.detections]
    await session.execute(insert(Detection), rows)
    frames = [d.frame for d in body.detections]
    record(
        session,
        caller,
        "bulk_create",
        "detection",
        None,
        None,
        {"video_id": video_id, "count": len(rows), "first_frame": min(frames), "last_frame": max(frames)},
    )
    await session.commit()
    return {"inserted": len(rows)}


@router.get("/detections", response_model=Page[DetectionOut])
async def list_detections(
    session: Session,
    caller: requires("detections:read"),
    video_id: Annotated[IdRef | None, Query()] = None,
    t_from: Seconds = None,
    t_to: Seconds = None,
    frame_from: FrameQuery = None,
    frame_to: FrameQuery = None,
    class_name: Annotated[ClassLabel | None, Query()] = None,
    track_id: FrameQuery = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
    sort: Annotated[DetectionSort, Query()] = "id",
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict:
    """Query detections by video, time range (seconds, inclusive), frame range, class, track, confidence."""
    stmt = select(Detection)
    if video_id is not None:
        stmt = stmt.where(Detection.video_id == video_id)
    if t_from is not None:
        stmt = stmt.where(Detection.timestamp_s >= t_from)
    if t_to is not None:
        stmt = stmt.where(Detection.timestamp_s <= t_to)
    if frame_from is not None:
        stmt = stmt.where(Detection.frame >= frame_from)
    if frame_to is not None:
        stmt = stmt.where(Detection.frame <= frame_to)
    if class_name is not None:
        stmt = stmt.where(Detection.class_name == class_name)
    if track_id is not None:
        stmt = stmt.where(Detection.track_id == track_id)
    if min_confidence is not None:
        stmt = stmt.where(Detection.confidence >= min_confidence)
    return await paginate(session, stmt, Detection, sort=sort, limit=limit, offset=offset)
