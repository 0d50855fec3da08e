"""``/videos/{id}/tracks``: tracks summarised from the detections that carry a track id."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import func, select

from nexus.service.crud import get_or_404, page_with_total
from nexus.service.dependencies import Session, requires
from nexus.service.schemas.common import ERROR_RESPONSES, IdPath, Limit, Offset, Page
from nexus.service.schemas.media import ClassLabel, TrackOut
from nexus.service.tables import Detection, Video

router = APIRouter(tags=["tracks"], responses=ERROR_RESPONSES)
TrackPath = Annotated[int, Path(ge=0, le=2_147_483_647)]


def _summary():
    return select(
        Detection.video_id,
        Detection.track_id,
        func.min(Detection.class_name).label("class_name"),
        func.min(Detection.frame).label("first_frame"),
        func.max(Detection.frame).label("last_frame"),
        func.min(Detection.timestamp_s).label("start_s"),
        func.max(Detection.timestamp_s).label("end_s"),
        func.count().label("detections"),
        func.avg(Detection.confidence).label("mean_confidence"),
    ).group_by(Detection.video_id, Detection.track_id)


@router.get("/videos/{video_id}/tracks", response_model=Page[TrackOut])
async def list_tracks(
    video_id: IdPath,
    session: Session,
    caller: requires("detections:read"),
    class_name: Annotated[ClassLabel | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict:
    """The tracks of one video, ordered by track id."""
    await get_or_404(session, Video, video_id, "video")
    stmt = _summary().where(Detection.video_id == video_id, Detection.track_id.is_not(None))
    if class_name is not None:
        stmt = stmt.where(Detection.class_name == class_name)
    rows, total = await page_with_total(
        session, stmt.order_by(Detection.track_id), limit=limit, offset=offset
    )
    fields = stmt.selected_columns.keys()
    items = [dict(zip(fields, row, strict=True)) for row in rows]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/videos/{video_id}/tracks/{track_id}", response_model=TrackOut)
async def get_track(
    video_id: IdPath, track_id: TrackPath, session: Session, caller: requires("detections:read")
) -> dict:
    """One track's summary (its boxes: ``GET /detections?video_id=..&track_id=..``)."""
    await get_or_404(session, Video, video_id, "video")
    stmt = _summary().where(Detection.video_id == video_id, Detection.track_id == track_id)
    row = (await session.execute(stmt)).mappings().one_or_none()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"track {track_id} of video {video_id} not found")
    return dict(row)
